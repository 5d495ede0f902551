!> A coarse Lorenz '96 model (K slow variables, RK4) completed by a learned closure.
!>
!> The closure sees x(3, K) = (X_{k-1}, X_k, X_{k+1}) at each point and returns the
!> coupling tendency u(1, K). A stochastic closure also takes and returns its state
!> s(n, K) (AR(1) noise per point): the host keeps it between time steps and passes the
!> same state to all four Runge-Kutta stages, so the noise is constant over a step, and
!> keeps the state the last stage returned.
!>
!> Usage: l96_host MODEL NSTATE NSTEPS OUT
!>   NSTATE 0 for a deterministic closure, else the state rows per point (2 for AR(1)
!>   noise on one output); writes X after NSTEPS steps of dt = 0.005 to OUT (raw real64)
!>   and prints "l96_host: done" and the seconds spent in closure calls.
program l96_host
  use, intrinsic :: iso_fortran_env, only: real64, int64
  use nn_closure
  implicit none
  integer, parameter :: K = 8
  real(real64), parameter :: F = 20.0_real64, dt = 0.005_real64
  type(nn_model) :: closure
  character(len=1024) :: path, arg, out
  character(len=512) :: msg
  integer :: nstate, nsteps, n, stage, ierr, i, unit
  real(real64) :: x(K), xs(K), kk(K, 4)
  real(real64), target :: feat(3, K), u(1, K)
  real(real64), allocatable, target :: state(:, :), state_next(:, :)
  real(real64), parameter :: stage_dt(4) = [0.0_real64, 0.5_real64, 0.5_real64, 1.0_real64]
  integer(int64) :: t0, t1, rate, ticks

  call get_command_argument(1, path)
  call get_command_argument(2, arg); read (arg, *) nstate
  call get_command_argument(3, arg); read (arg, *) nsteps
  call get_command_argument(4, out)
  call nn_load(closure, trim(path), stat=ierr, errmsg=msg)
  if (ierr /= NN_OK) then
    print '(a)', "l96_host: " // trim(msg)
    stop 2
  end if
  if (nstate > 0) then
    allocate (state(nstate, K), state_next(nstate, K))
    state = 0.0_real64            ! zeros: each point seeds itself on its first call
  end if
  do i = 1, K
    x(i) = 0.5_real64 * F + sin(real(i, real64))
  end do
  ticks = 0
  do n = 1, nsteps
    do stage = 1, 4
      if (stage == 1) then
        xs = x
      else
        xs = x + stage_dt(stage) * dt * kk(:, stage - 1)
      end if
      feat(1, :) = cshift(xs, -1)
      feat(2, :) = xs
      feat(3, :) = cshift(xs, 1)
      call system_clock(t0, rate)
      if (nstate > 0) then
        call nn_forward(closure, [nn_array(feat), nn_array(state)], [nn_array(u), nn_array(state_next)], &
            stat=ierr, errmsg=msg)
      else
        call nn_forward(closure, feat, u, stat=ierr, errmsg=msg)
      end if
      call system_clock(t1)
      ticks = ticks + (t1 - t0)
      if (ierr /= NN_OK) then
        print '(a)', "l96_host: " // trim(msg)
        stop 3
      end if
      kk(:, stage) = -cshift(xs, -1) * (cshift(xs, -2) - cshift(xs, 1)) - xs + F + u(1, :)
    end do
    x = x + dt / 6.0_real64 * (kk(:, 1) + 2.0_real64 * kk(:, 2) + 2.0_real64 * kk(:, 3) + kk(:, 4))
    if (nstate > 0) state = state_next
  end do
  open (newunit=unit, file=trim(out), access="stream", form="unformatted", status="replace")
  write (unit) x
  close (unit)
  call nn_free(closure)
  print '(a, f0.3)', "l96_host: closure seconds ", real(ticks, real64) / real(rate, real64)
  print '(a)', "l96_host: done"
end program l96_host
