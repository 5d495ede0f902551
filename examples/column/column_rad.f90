!> The expensive scheme of the column example: multi-band longwave radiative
!> transfer over a column of `nlev` layers, in plain Fortran.
!>
!> Two-stream, no scattering, diffusivity approximation (factor 1.66), in
!> `nband` spectral bands of equal width between 10 and 3000 cm-1. Each band is
!> grey: its absorption coefficient comes from an analytic water-vapour
!> spectrum (rotation band, 6.3 um band, a weak continuum) and a well-mixed
!> CO2-like gas (15 um band), scaled by the square root of pressure. Each layer is isothermal,
!> emitting the band's Planck radiance at its temperature; the surface is
!> black at `ts`; nothing comes down through the top.
!>
!> Result: the net DOWNWARD flux `fnet(nlev+1, ncol)` (W m-2) at the `nlev+1`
!> interfaces, interface 1 at the top. The host heats layer i by
!> -(fnet(i+1) - fnet(i)) / (cp dp_i / g), so a column's energy changes by the
!> top and bottom fluxes only. Cost: 2 exp per layer and band, so it grows
!> with nlev * nband * ncol.
module column_rad
  implicit none
  private

  integer, parameter, public :: dp = kind(1.0d0)   !< real kind of the example
  real(dp), parameter, public :: grav = 9.81_dp      !< m s-2
  real(dp), parameter, public :: cp_air = 1004.0_dp  !< J kg-1 K-1
  real(dp), parameter, public :: p_ref = 1.0e5_dp    !< surface pressure, Pa

  real(dp), parameter :: pi = 3.14159265358979324_dp
  real(dp), parameter :: c1 = 1.191042972e-16_dp     ! 2 h c^2, W m2 sr-1
  real(dp), parameter :: c2 = 1.438776877e-2_dp      ! h c / k, m K
  real(dp), parameter :: nu_lo = 1.0e3_dp, nu_hi = 3.0e5_dp  ! m-1 (10 and 3000 cm-1)
  real(dp), parameter :: diffusivity = 1.66_dp
  real(dp), parameter :: q_co2 = 6.0e-4_dp           ! kg kg-1 (about 400 ppmv)

  public :: lw_fluxes, band_absorption

contains

  !> Absorption coefficients (m2 kg-1) of band b of nband: water vapour, CO2.
  subroutine band_absorption(b, nband, k_h2o, k_co2)
    integer, intent(in) :: b, nband
    real(dp), intent(out) :: k_h2o, k_co2
    real(dp) :: nu  ! band centre, cm-1
    nu = (nu_lo + (b - 0.5_dp) * (nu_hi - nu_lo) / nband) / 100.0_dp
    k_h2o = 100.0_dp * exp(-nu / 110.0_dp) + 30.0_dp * exp(-((nu - 1595.0_dp) / 200.0_dp)**2) &
        + 0.02_dp
    k_co2 = 100.0_dp * exp(-((nu - 667.0_dp) / 80.0_dp)**2)
  end subroutine band_absorption

  !> Net downward longwave flux at the interfaces of ncol columns.
  subroutine lw_fluxes(nlev, ncol, nband, p_int, t, q, ts, fnet)
    integer, intent(in) :: nlev                 !< layers per column
    integer, intent(in) :: ncol                 !< columns
    integer, intent(in) :: nband                !< spectral bands (cost grows with it)
    real(dp), intent(in) :: p_int(nlev + 1)     !< interface pressure, Pa, top first
    real(dp), intent(in) :: t(nlev, ncol)       !< layer temperature, K
    real(dp), intent(in) :: q(nlev, ncol)       !< specific humidity, kg kg-1
    real(dp), intent(in) :: ts(ncol)            !< surface temperature, K
    real(dp), intent(out) :: fnet(nlev + 1, ncol)  !< net downward flux, W m-2
    real(dp) :: kh(nband), kc(nband), nu(nband), path(nlev)
    real(dp) :: trans(nlev), src(nlev), up, dn(nlev + 1), dnu
    integer :: b, i, j
    dnu = (nu_hi - nu_lo) / nband
    do b = 1, nband
      call band_absorption(b, nband, kh(b), kc(b))
      nu(b) = nu_lo + (b - 0.5_dp) * dnu
    end do
    do i = 1, nlev  ! absorber mass per area, scaled by the square root of pressure
      path(i) = diffusivity * (p_int(i + 1) - p_int(i)) / grav &
          * sqrt(0.5_dp * (p_int(i) + p_int(i + 1)) / p_ref)
    end do
    do j = 1, ncol
      fnet(:, j) = 0.0_dp
      do b = 1, nband
        do i = 1, nlev
          trans(i) = exp(-(kh(b) * q(i, j) + kc(b) * q_co2) * path(i))
          src(i) = band_emission(nu(b), dnu, t(i, j))
        end do
        dn(1) = 0.0_dp
        do i = 1, nlev
          dn(i + 1) = dn(i) * trans(i) + (1.0_dp - trans(i)) * src(i)
        end do
        up = band_emission(nu(b), dnu, ts(j))
        fnet(nlev + 1, j) = fnet(nlev + 1, j) + (dn(nlev + 1) - up)
        do i = nlev, 1, -1
          up = up * trans(i) + (1.0_dp - trans(i)) * src(i)
          fnet(i, j) = fnet(i, j) + (dn(i) - up)
        end do
      end do
    end do
  end subroutine lw_fluxes

  !> Hemispheric flux emitted by a black body at temperature temp in a band
  !> of width dnu (m-1) around nu (m-1): pi B_nu(T) dnu, W m-2.
  pure real(dp) function band_emission(nu, dnu, temp)
    real(dp), intent(in) :: nu, dnu, temp
    band_emission = pi * c1 * nu**3 / (exp(c2 * nu / temp) - 1.0_dp) * dnu
  end function band_emission

end module column_rad
