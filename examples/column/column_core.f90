!> The host physics of the column example, apart from radiation: the pressure
!> grid, humidity at fixed relative humidity, the surface sensible heat flux,
!> the flux-form temperature update and a convective adjustment.
!>
!> A step of the single-column model (`advance`): the host gets the radiative
!> net downward flux at the nlev+1 interfaces (from the scheme or from the
!> emulator), adds the surface sensible heat flux at the bottom interface
!> (`total_flux`: flux = other + radiative, one addition per face), updates
!> every layer by the flux difference (`flux_update`, exactly
!> t - dt*(flux(i+1) - flux(i))/dx(i) with dx = cp dp / g, so the column's
!> energy changes by the top and bottom fluxes only) and mixes unstable
!> blocks of layers to a critical lapse rate (`convect`, enthalpy-conserving).
!> Humidity follows temperature at a fixed relative humidity profile.
module column_core
  use column_rad, only: dp, grav, cp_air, p_ref
  implicit none
  private

  public :: grid, layer_heat_capacity, humidity, initial_state, total_flux, flux_update
  public :: convect, advance

  real(dp), parameter :: kappa_c = 0.19_dp  ! R Gamma_c / g for Gamma_c = 6.5 K/km
  real(dp), parameter :: t_strat = 200.0_dp ! initial stratospheric temperature, K
  real(dp), parameter :: q_min = 3.0e-6_dp  ! stratospheric humidity, kg kg-1

contains

  !> Interface pressures of nlev equal layers from the top (0 Pa) to p_ref.
  subroutine grid(nlev, p_int)
    integer, intent(in) :: nlev
    real(dp), intent(out) :: p_int(nlev + 1)  !< Pa, top first
    integer :: i
    do i = 1, nlev + 1
      p_int(i) = p_ref * (i - 1) / nlev
    end do
  end subroutine grid

  !> Heat capacity per area of each layer, cp dp / g (J m-2 K-1).
  subroutine layer_heat_capacity(nlev, p_int, dx)
    integer, intent(in) :: nlev
    real(dp), intent(in) :: p_int(nlev + 1)
    real(dp), intent(out) :: dx(nlev)
    dx = cp_air * (p_int(2:) - p_int(:nlev)) / grav
  end subroutine layer_heat_capacity

  !> Specific humidity at relative humidity rh0 * (p/p_ref - 0.02)/0.98 (not
  !> below q_min): moist near the surface, dry aloft.
  subroutine humidity(nlev, ncol, p_int, rh0, t, q)
    integer, intent(in) :: nlev, ncol
    real(dp), intent(in) :: p_int(nlev + 1), rh0, t(nlev, ncol)
    real(dp), intent(out) :: q(nlev, ncol)
    real(dp) :: p, es, rh
    integer :: i, j
    do j = 1, ncol
      do i = 1, nlev
        p = 0.5_dp * (p_int(i) + p_int(i + 1))
        es = 611.2_dp * exp(17.67_dp * (t(i, j) - 273.15_dp) / (t(i, j) - 29.65_dp))
        rh = max(rh0 * (p / p_ref - 0.02_dp) / 0.98_dp, 0.0_dp)
        q(i, j) = max(rh * 0.622_dp * es / max(p - 0.378_dp * es, 0.5_dp * p), q_min)
      end do
    end do
  end subroutine humidity

  !> A first guess: the critical lapse rate from ts up to 200 K, isothermal above.
  subroutine initial_state(nlev, ncol, p_int, ts, t)
    integer, intent(in) :: nlev, ncol
    real(dp), intent(in) :: p_int(nlev + 1), ts(ncol)
    real(dp), intent(out) :: t(nlev, ncol)
    integer :: i
    do i = 1, nlev
      t(i, :) = max(ts * (0.5_dp * (p_int(i) + p_int(i + 1)) / p_ref)**kappa_c, t_strat)
    end do
  end subroutine initial_state

  !> The total net downward flux: other (the surface sensible heat flux
  !> chs*(ts - t(nlev)) upward at the bottom interface, zero elsewhere) plus
  !> the radiative flux rad, one addition per face.
  subroutine total_flux(nlev, ncol, chs, t, ts, rad, other, flux)
    integer, intent(in) :: nlev, ncol
    real(dp), intent(in) :: chs                 !< W m-2 K-1
    real(dp), intent(in) :: t(nlev, ncol), ts(ncol), rad(nlev + 1, ncol)
    real(dp), intent(out) :: other(nlev + 1, ncol), flux(nlev + 1, ncol)
    other = 0.0_dp
    other(nlev + 1, :) = -chs * (ts - t(nlev, :))
    flux = other + rad
  end subroutine total_flux

  !> t(i) <- t(i) - dt*(flux(i+1) - flux(i))/dx(i), in that order.
  subroutine flux_update(nlev, ncol, dt, dx, flux, t)
    integer, intent(in) :: nlev, ncol
    real(dp), intent(in) :: dt, dx(nlev), flux(nlev + 1, ncol)
    real(dp), intent(inout) :: t(nlev, ncol)
    integer :: i, j
    do j = 1, ncol
      do i = 1, nlev
        t(i, j) = t(i, j) - dt * (flux(i + 1, j) - flux(i, j)) / dx(i)
      end do
    end do
  end subroutine flux_update

  !> Convective adjustment: every unstable block of layers (potential
  !> temperature t/ex growing downwards) is mixed to one value, the block
  !> growing up and down while its neighbours are unstable against it,
  !> conserving sum(dp*t). Passes repeat until the column is stable.
  subroutine convect(nlev, ncol, p_int, t)
    integer, intent(in) :: nlev, ncol
    real(dp), intent(in) :: p_int(nlev + 1)
    real(dp), intent(inout) :: t(nlev, ncol)
    real(dp), parameter :: tol = 1.0e-9_dp
    real(dp) :: ex(nlev), m(nlev), theta
    integer :: i, j, kt, kb, pass
    logical :: changed, grew
    m = p_int(2:) - p_int(:nlev)
    ex = (0.5_dp * (p_int(2:) + p_int(:nlev)) / p_ref)**kappa_c
    do j = 1, ncol
      do pass = 1, nlev
        changed = .false.
        i = nlev - 1
        do while (i >= 1)
          if (t(i, j) / ex(i) >= t(i + 1, j) / ex(i + 1) - tol) then
            i = i - 1
            cycle
          end if
          kt = i
          kb = i + 1
          grew = .true.
          do while (grew)
            theta = sum(m(kt:kb) * t(kt:kb, j)) / sum(m(kt:kb) * ex(kt:kb))
            grew = .false.
            if (kb < nlev) then
              if (t(kb + 1, j) / ex(kb + 1) > theta + tol) then
                kb = kb + 1
                grew = .true.
              end if
            end if
            if (kt > 1) then
              if (t(kt - 1, j) / ex(kt - 1) < theta - tol) then
                kt = kt - 1
                grew = .true.
              end if
            end if
          end do
          t(kt:kb, j) = theta * ex(kt:kb)
          changed = .true.
          i = kt - 1
        end do
        if (.not. changed) exit
      end do
    end do
  end subroutine convect

  !> One step after the radiation: total flux, flux update, convection, humidity.
  subroutine advance(nlev, ncol, dt, chs, rh0, p_int, rad, ts, t, q)
    integer, intent(in) :: nlev, ncol
    real(dp), intent(in) :: dt, chs, rh0, p_int(nlev + 1), rad(nlev + 1, ncol), ts(ncol)
    real(dp), intent(inout) :: t(nlev, ncol)
    real(dp), intent(out) :: q(nlev, ncol)
    real(dp) :: other(nlev + 1, ncol), flux(nlev + 1, ncol), dx(nlev)
    call layer_heat_capacity(nlev, p_int, dx)
    call total_flux(nlev, ncol, chs, t, ts, rad, other, flux)
    call flux_update(nlev, ncol, dt, dx, flux, t)
    call convect(nlev, ncol, p_int, t)
    call humidity(nlev, ncol, p_int, rh0, t, q)
  end subroutine advance

end module column_core
