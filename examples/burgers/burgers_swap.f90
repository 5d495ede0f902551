!> Several runs of `burgers_core` in one process, one at a time.
!>
!> `burgers_core` keeps one run in module variables. A host that runs a
!> companion at another resolution alongside (the online example: a DNS
!> companion next to the LES) keeps each run in a `core_run` and swaps it in
!> with `load_run` before stepping it, `save_run` after. A run swapped out and
!> in again steps exactly as if it had never left: everything `step` reads is
!> carried (state, clock, forcing coefficients and generator, closure choice,
!> momentum accounts); the grid-derived arrays are rebuilt by `init`.
module burgers_swap
  use burgers_core, only: dp, i8, init, n, length, nu, dt, time, nstep, closure_id, scheme_id, cs, &
      kmin, kmax, nforce, force_amp, rng_state, fa, fb, u, frc, mom_forcing, mom_scale
  implicit none
  private

  public :: core_run, save_run, load_run

  !> One run of the core, swapped out.
  type :: core_run
    integer :: n = 0, nstep = 0, closure_id = 0, scheme_id = 0, kmin = 1, kmax = 0, nforce = 1
    real(dp) :: length = 0, nu = 0, dt = 0, time = 0, cs = 0, force_amp = 0
    real(dp) :: mom_forcing = 0, mom_scale = 0
    integer(i8) :: rng_state = 1
    real(dp), allocatable :: u(:), frc(:), fa(:), fb(:)
  end type core_run

contains

  !> Copy the core's current run into `r`.
  subroutine save_run(r)
    type(core_run), intent(inout) :: r  !< receives the run
      r%n = n; r%nstep = nstep; r%closure_id = closure_id; r%scheme_id = scheme_id
      r%kmin = kmin; r%kmax = kmax; r%nforce = nforce
      r%length = length; r%nu = nu; r%dt = dt; r%time = time; r%cs = cs; r%force_amp = force_amp
      r%mom_forcing = mom_forcing; r%mom_scale = mom_scale; r%rng_state = rng_state
      r%u = u; r%frc = frc; r%fa = fa; r%fb = fb
  end subroutine save_run

  !> Make `r` the core's current run (the run there before is dropped: save it first).
  subroutine load_run(r)
    type(core_run), intent(in) :: r  !< a run saved by save_run
    call init(r%n, r%length, r%nu, r%dt, 1, r%force_amp, r%kmin, r%kmax, r%dt)
      nforce = r%nforce; nstep = r%nstep; time = r%time
      closure_id = r%closure_id; scheme_id = r%scheme_id; cs = r%cs
      mom_forcing = r%mom_forcing; mom_scale = r%mom_scale; rng_state = r%rng_state
      u(:) = r%u; frc(:) = r%frc; fa(:) = r%fa; fb(:) = r%fb
  end subroutine load_run

end module burgers_swap
