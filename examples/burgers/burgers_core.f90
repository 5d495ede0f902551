!> Forced 1-D viscous Burgers equation on a periodic domain: a small
!> finite-volume dynamical core in flux form, used as the host model of the
!> pyclosure example.
!>
!>     du/dt + d/dx [ u**2/2 - nu du/dx + tau ] = f(x, t)
!>
!> Cells i = 1..n of width dx = length/n; face i is the LEFT face of cell i and
!> face n+1 is face 1 again (periodic). Every flux array has n+1 entries with
!> entry n+1 a copy of entry 1, so the cell update is literally
!>
!>     u(i) = uin(i) - dt*(flux(i+1) - flux(i))/dx + dt*frc(i)
!>
!> inside each stage of the SSP-RK3 (Shu-Osher) scheme, with `flux` the TOTAL
!> face flux, formed as flux = flux_oth + flux_sgs: the non-closure part
!> flux_oth = flux_res + flux_vis (resolved + viscous) plus the subgrid flux,
!> one addition per face (what replay checks bit for bit). The sum of flux differences
!> telescopes, so total momentum sum(u)*dx changes only by the forcing, whose
!> contribution is accumulated in `mom_forcing` (and a rounding scale in
!> `mom_scale`).
!>
!> Forcing: cell averages of amp * sum_k [a_k cos(2 pi k x/L) + b_k sin(2 pi k x/L)],
!> k = kmin..kmax, with a_k, b_k uniform in [-1, 1) from a xorshift64 generator
!> seeded by `seed`; redrawn (a_1, b_1, a_2, b_2, ...) at the start of every
!> step whose index is a multiple of nforce = max(1, nint(force_tau/dt)), and
!> held fixed in between. The Python twin (burgers_twin.py) reproduces it.
module burgers_core
  use, intrinsic :: iso_fortran_env, only: real64, int64
  use burgers_hook, only: sgs_hook, stage_hook
  implicit none
  private

  integer, parameter, public :: dp = real64     !< real kind of the core
  integer, parameter, public :: i8 = int64      !< integer kind of the generator

  integer, parameter, public :: closure_none = 0         !< no subgrid flux
  integer, parameter, public :: closure_smagorinsky = 1  !< tau = -(cs dx)^2 |g| g
  integer, parameter, public :: closure_nn = 2           !< tau from sgs_hook
  integer, parameter, public :: scheme_central = 0   !< (ul^2 + ul ur + ur^2)/6
  integer, parameter, public :: scheme_rusanov = 1   !< local Lax-Friedrichs

  real(dp), parameter :: twopi = 6.283185307179586476925286766559_dp

  ! ---- grid, parameters and clock
  integer, public :: n = 0              !< number of cells
  real(dp), public :: length = 0.0_dp   !< domain length
  real(dp), public :: dx = 0.0_dp       !< cell width
  real(dp), public :: nu = 0.0_dp       !< kinematic viscosity
  real(dp), public :: dt = 0.0_dp       !< time step
  real(dp), public :: time = 0.0_dp     !< model time
  integer, public :: nstep = 0          !< steps taken since init
  integer, public :: closure_id = closure_none  !< active closure
  integer, public :: scheme_id = scheme_central !< resolved-flux scheme
  real(dp), public :: cs = 0.0_dp       !< Smagorinsky constant

  ! ---- forcing
  integer, public :: kmin = 1, kmax = 0 !< forced wavenumbers (k = 0 is the mean)
  integer, public :: nforce = 1         !< steps between forcing redraws
  real(dp), public :: force_amp = 0.0_dp  !< forcing amplitude
  integer(i8), public :: rng_state = 1_i8 !< xorshift64 state
  real(dp), allocatable, public :: fa(:), fb(:)  !< current coefficients (kmin:kmax)
  real(dp), allocatable, public :: cbas(:, :), sbas(:, :) !< cell-mean cos/sin, (n, kmin:kmax)

  ! ---- state, fluxes, diagnostics
  real(dp), allocatable, public :: u(:)         !< cell values (n)
  real(dp), allocatable, public :: frc(:)       !< forcing in the cells (n)
  real(dp), allocatable, public :: flux(:)      !< total face flux (n+1)
  real(dp), allocatable, public :: flux_res(:)  !< resolved u^2/2 flux (n+1)
  real(dp), allocatable, public :: flux_vis(:)  !< viscous -nu du/dx (n+1)
  real(dp), allocatable, public :: flux_sgs(:)  !< subgrid flux tau (n+1)
  real(dp), allocatable, public :: flux_oth(:)  !< non-closure part flux_res + flux_vis (n+1)
  real(dp), public :: mom_forcing = 0.0_dp  !< accumulated dt*dx*sum(frc)
  real(dp), public :: mom_scale = 0.0_dp    !< accumulated magnitude of the update terms

  real(dp), allocatable :: u0(:), w(:)   ! RK work arrays

  public :: init, set_closure, set_state, step, compute_fluxes
  public :: momentum, energy, rng_uniform, rng_fill, finalize

contains

  !> Allocate the grid and state (u = 0), build the forcing basis, seed the
  !> generator. The closure is "none" and the scheme central until changed.
  subroutine init(ncells, domain_length, visc, timestep, seed, amp, k_min, k_max, force_tau)
    integer, intent(in) :: ncells      !< number of cells
    real(dp), intent(in) :: domain_length  !< domain length
    real(dp), intent(in) :: visc       !< viscosity
    real(dp), intent(in) :: timestep   !< time step
    integer, intent(in) :: seed        !< forcing seed (any integer)
    real(dp), intent(in) :: amp        !< forcing amplitude (0: unforced)
    integer, intent(in) :: k_min       !< lowest forced wavenumber (0 = mean)
    integer, intent(in) :: k_max       !< highest forced wavenumber
    real(dp), intent(in) :: force_tau  !< time between forcing redraws
    call finalize()
      n = ncells; length = domain_length; dx = domain_length/real(ncells, dp); nu = visc; dt = timestep
      time = 0.0_dp; nstep = 0; mom_forcing = 0.0_dp; mom_scale = 0.0_dp
      closure_id = closure_none; scheme_id = scheme_central; cs = 0.0_dp
      kmin = k_min; kmax = k_max; force_amp = amp
    nforce = max(1, nint(force_tau/timestep))
    allocate(u(n), frc(n), u0(n), w(n), source=0.0_dp)
    allocate(flux(n + 1), flux_res(n + 1), flux_vis(n + 1), flux_sgs(n + 1), flux_oth(n + 1), source=0.0_dp)
    allocate(fa(kmin:kmax), fb(kmin:kmax), source=0.0_dp)
    allocate(cbas(n, kmin:kmax), sbas(n, kmin:kmax))
    call build_basis()
    call rng_seed(seed)
  end subroutine init

  !> Release everything (safe to call twice).
  subroutine finalize()
    if (allocated(u)) deallocate(u, frc, u0, w, flux, flux_res, flux_vis, flux_sgs, flux_oth)
    if (allocated(fa)) deallocate(fa, fb, cbas, sbas)
    n = 0
  end subroutine finalize

  !> Choose the subgrid closure ("none", "smagorinsky", "nn") and the
  !> resolved-flux scheme ("central", "rusanov"). stat /= 0 on a bad name or
  !> on "nn" with no hook installed (see burgers_nn).
  subroutine set_closure(name, smag_cs, scheme, stat)
    character(len=*), intent(in) :: name    !< closure name
    real(dp), intent(in) :: smag_cs         !< Smagorinsky constant (used by "smagorinsky")
    character(len=*), intent(in) :: scheme  !< resolved flux scheme
    integer, intent(out) :: stat            !< 0 ok, 1 bad closure, 2 no hook, 3 bad scheme
    stat = 0
    select case (trim(name))
      case ("none"); closure_id = closure_none
      case ("smagorinsky"); closure_id = closure_smagorinsky
    case ("nn")
      closure_id = closure_nn
      if (.not. associated(sgs_hook)) stat = 2
      case default; stat = 1
    end select
    cs = smag_cs
    select case (trim(scheme))
      case ("central"); scheme_id = scheme_central
      case ("rusanov"); scheme_id = scheme_rusanov
      case default; stat = 3
    end select
  end subroutine set_closure

  !> Replace the cell values.
  subroutine set_state(unew)
    real(dp), intent(in) :: unew(:)  !< new cell values, size n
    u(:) = unew(1:n)
  end subroutine set_state

  !> Advance nsteps SSP-RK3 steps.
  subroutine step(nsteps)
    integer, intent(in) :: nsteps  !< number of steps
    integer :: s, i
    do s = 1, nsteps
      if (mod(nstep, nforce) == 0) call draw_forcing()
      mom_forcing = mom_forcing + dt*dx*sum(frc)
      u0(:) = u(:)
      call rk_stage(u0)
      u(:) = w(:)
      call rk_stage(u)
      do i = 1, n
        u(i) = 0.75_dp*u0(i) + 0.25_dp*w(i)
      end do
      call rk_stage(u)
      do i = 1, n
        u(i) = u0(i)/3.0_dp + 2.0_dp*w(i)/3.0_dp
      end do
      nstep = nstep + 1
      time = real(nstep, dp)*dt
    end do
  end subroutine step

  !> One Euler substep w = uin - dt*dF/dx + dt*f with fluxes from uin.
  subroutine rk_stage(uin)
    real(dp), intent(in) :: uin(:)
    integer :: i
    real(dp) :: acc
    call compute_fluxes(uin)
    acc = 0.0_dp
    do i = 1, n
      w(i) = uin(i) - dt*(flux(i + 1) - flux(i))/dx + dt*frc(i)
      acc = acc + abs(uin(i)) + dt*(abs(flux(i + 1)) + abs(flux(i)))/dx + dt*abs(frc(i))
    end do
    mom_scale = mom_scale + dx*acc
    if (associated(stage_hook)) call stage_hook(uin, w, flux, flux_oth, flux_sgs, frc, dt, dx)
  end subroutine rk_stage

  !> Face fluxes from cell values: fills flux_res, flux_vis, flux_sgs, flux_oth, flux.
  subroutine compute_fluxes(uin)
    real(dp), intent(in) :: uin(:)  !< cell values, size n
    integer :: i, im
    real(dp) :: ul, ur, g, cdx, cdx2
    cdx = cs*dx
    cdx2 = cdx*cdx
    do i = 1, n
      im = i - 1
      if (i == 1) im = n
         ul = uin(im); ur = uin(i)
      if (scheme_id == scheme_rusanov) then
        flux_res(i) = 0.25_dp*(ul*ul + ur*ur) - 0.5_dp*max(abs(ul), abs(ur))*(ur - ul)
      else
        flux_res(i) = (ul*ul + ul*ur + ur*ur)/6.0_dp
      end if
      g = (ur - ul)/dx
      flux_vis(i) = -nu*g
      if (closure_id == closure_smagorinsky) then
        flux_sgs(i) = -(cdx2*abs(g)*g)
      else
        flux_sgs(i) = 0.0_dp
      end if
    end do
    if (closure_id == closure_nn) call sgs_hook(uin(1:n), flux_sgs(1:n))
    do i = 1, n
      flux_oth(i) = flux_res(i) + flux_vis(i)
      flux(i) = flux_oth(i) + flux_sgs(i)
    end do
      flux(n + 1) = flux(1); flux_res(n + 1) = flux_res(1); flux_oth(n + 1) = flux_oth(1)
      flux_vis(n + 1) = flux_vis(1); flux_sgs(n + 1) = flux_sgs(1)
  end subroutine compute_fluxes

  !> Total momentum sum(u)*dx (plain summation).
  real(dp) function momentum()
    momentum = sum(u)*dx
  end function momentum

  !> Kinetic energy sum(u^2/2)*dx.
  real(dp) function energy()
    energy = 0.5_dp*sum(u*u)*dx
  end function energy

  !> Redraw the forcing coefficients and rebuild frc.
  subroutine draw_forcing()
    integer :: i, k
    do k = kmin, kmax
      fa(k) = 2.0_dp*rng_uniform() - 1.0_dp
      fb(k) = 2.0_dp*rng_uniform() - 1.0_dp
    end do
    do i = 1, n
      frc(i) = 0.0_dp
      do k = kmin, kmax
        frc(i) = frc(i) + fa(k)*cbas(i, k) + fb(k)*sbas(i, k)
      end do
      frc(i) = force_amp*frc(i)
    end do
  end subroutine draw_forcing

   !> Exact cell means of cos and sin(2 pi k x/L); k = 0 is the constant mode.
  subroutine build_basis()
    integer :: i, k
    real(dp) :: kw, t0, t1
    do k = kmin, kmax
      if (k == 0) then
            cbas(:, k) = 1.0_dp; sbas(:, k) = 0.0_dp
        cycle
      end if
      kw = twopi*real(k, dp)/real(n, dp)
      do i = 1, n
        t0 = twopi*real(k*(i - 1), dp)/real(n, dp)
        t1 = twopi*real(k*i, dp)/real(n, dp)
        cbas(i, k) = (sin(t1) - sin(t0))/kw
        sbas(i, k) = (cos(t0) - cos(t1))/kw
      end do
    end do
  end subroutine build_basis

  !> Seed the xorshift64 generator from any integer and discard 16 draws.
  subroutine rng_seed(seed)
    integer, intent(in) :: seed  !< seed
    integer :: j
    real(dp) :: r
    rng_state = ieor(int(seed, i8), int(z'2545F4914F6CDD1D', i8))
    if (rng_state == 0_i8) rng_state = 1_i8
    do j = 1, 16
      r = rng_uniform()
    end do
  end subroutine rng_seed

  !> Next uniform deviate in [0, 1) from xorshift64 (shifts 13, 7, 17), top 53 bits.
  real(dp) function rng_uniform()
    rng_state = ieor(rng_state, ishft(rng_state, 13))
    rng_state = ieor(rng_state, ishft(rng_state, -7))
    rng_state = ieor(rng_state, ishft(rng_state, 17))
    rng_uniform = real(ishft(rng_state, -11), dp)*2.0_dp**(-53)
  end function rng_uniform

  !> Fill r with successive deviates (for checking the twin's generator).
  subroutine rng_fill(r)
    real(dp), intent(out) :: r(:)  !< deviates in [0, 1)
    integer :: j
    do j = 1, size(r)
      r(j) = rng_uniform()
    end do
  end subroutine rng_fill

end module burgers_core
