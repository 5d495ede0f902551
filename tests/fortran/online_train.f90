!> online_train: a host that trains its closure while it runs (use nn_closure,
!> nn_train_*). Arguments: MODEL (a float64 MLP, 4 features -> 2 outputs),
!> OTHER (a model of another architecture), OUT (a folder), and a spec file
!> that raises. The target is a known regression y = A x + c; the host steps
!> 300 times on fresh columns, syncs every 100 steps while recording, and writes:
!>   losses.bin      the loss of every step
!>   x_test.bin, y_test.bin   nn_forward after the last sync (Fortran order)
!>   faults.txt      "name status message" for each fault case
!>   ckpt.pt         nn_train_save's checkpoint; versions/ and records/
!> Prints "online training ran" at the end.
program online_train
  use, intrinsic :: iso_fortran_env, only: real32, real64
  use nn_closure
  implicit none
  integer, parameter :: nfeat = 4, nout = 2, ncol = 64, nsteps = 300
  type(nn_model) :: model, other
  type(nn_trainer) :: trainer, bad
  real(real64) :: x(nfeat, ncol), y(nout, ncol), losses(nsteps), loss, xt(nfeat, 8), yt(nout, 8)
  real(real64) :: wrong(nout + 1, ncol)
  real(real32) :: x4(nfeat, ncol), y4(nout, ncol)
  character(len=1024) :: model_path, other_path, out, raising_spec, msg
  integer :: ierr, step, u

  call get_command_argument(1, model_path)
  call get_command_argument(2, other_path)
  call get_command_argument(3, out)
  call get_command_argument(4, raising_spec)
  call nn_load(model, trim(model_path), stat=ierr, errmsg=msg)
  call check("nn_load", ierr == NN_OK)
  call nn_load(other, trim(other_path), stat=ierr, errmsg=msg)
  call check("nn_load other", ierr == NN_OK)
  call nn_record_start(model, trim(out) // "/records", every=50)
  call nn_train_create(trainer, model, options="lr=0.01", versions=trim(out) // "/versions", stat=ierr, errmsg=msg)
  call check("nn_train_create", ierr == NN_OK)

  open (newunit=u, file=trim(out) // "/faults.txt", status="replace", action="write")
  call nn_train_create(bad, model, spec=trim(out) // "/no_such_spec.py:spec", stat=ierr, errmsg=msg)
  call fault("missing_spec")
  call nn_train_create(bad, model, spec=trim(raising_spec) // ":spec", stat=ierr, errmsg=msg)
  call fault("spec_raises")
  call batch(1)
  call nn_train_step(trainer, x, wrong, loss=loss, stat=ierr, errmsg=msg)
  call fault("wrong_shape")
  x4 = real(x, real32)
  y4 = real(y, real32)
  call nn_train_step(trainer, x4, y4, loss=loss, stat=ierr, errmsg=msg)
  call fault("wrong_dtype")
  y(1, 1) = ieee_nan()
  call nn_train_step(trainer, x, y, loss=loss, stat=ierr, errmsg=msg)
  call fault("nan_loss")
  call nn_train_sync(trainer, other, stat=ierr, errmsg=msg)
  call fault("sync_other_architecture")
  close (u)

  do step = 1, nsteps  ! after every fault, the next call works
    call batch(step)
    call nn_forward(model, x, y)  ! the host's own use of the closure, recorded every 50 calls
    call target(x, y)
    call nn_train_step(trainer, x, y, loss=losses(step), stat=ierr, errmsg=msg)
    call check("nn_train_step", ierr == NN_OK)
    if (mod(step, 100) == 0) then
      call nn_train_sync(trainer, model, stat=ierr, errmsg=msg)
      call check("nn_train_sync", ierr == NN_OK)
    end if
  end do
  call check("nn_train_version", nn_train_version(trainer) == 3)
  call nn_record_stop(model)
  call nn_train_save(trainer, trim(out) // "/ckpt.pt", stat=ierr, errmsg=msg)
  call check("nn_train_save", ierr == NN_OK)
  call batch(nsteps + 1)
  xt = x(:, 1:8)
  call nn_forward(model, xt, yt)
  call dump("losses", losses, size(losses))
  call dump("x_test", xt, size(xt))
  call dump("y_test", yt, size(yt))
  call nn_train_free(trainer)
  call nn_train_free(trainer)  ! idempotent
  call nn_free(model)
  call nn_free(other)
  print '(a, es10.3, a, es10.3)', "loss first ", losses(1), " last ", losses(nsteps)
  print '(a)', "online training ran"

contains

  !> Fresh columns for step s: x in [-1, 1], y = A x + c.
  subroutine batch(s)
    integer, intent(in) :: s
    integer :: i, j
    do j = 1, ncol
      do i = 1, nfeat
        x(i, j) = sin(0.7d0 * i + 1.3d0 * j + 0.37d0 * s)
      end do
    end do
    call target(x, y)
  end subroutine batch

  subroutine target(xin, yout)
    real(real64), intent(in) :: xin(:, :)
    real(real64), intent(out) :: yout(:, :)
    yout(1, :) = 0.5d0 * xin(1, :) - 0.25d0 * xin(2, :) + 0.1d0
    yout(2, :) = 0.3d0 * xin(3, :) + 0.2d0 * xin(4, :) - 0.05d0
  end subroutine target

  subroutine fault(name)
    character(len=*), intent(in) :: name
    write (u, '(a, 1x, i0, 1x, a)') name, ierr, trim(msg)
  end subroutine fault

  real(real64) function ieee_nan()
    use, intrinsic :: ieee_arithmetic, only: ieee_quiet_nan, ieee_value
    ieee_nan = ieee_value(1d0, ieee_quiet_nan)
  end function ieee_nan

  subroutine check(what, ok)
    character(len=*), intent(in) :: what
    logical, intent(in) :: ok
    if (.not. ok) then
      print '(a)', what // " failed: " // trim(msg)
      error stop 1
    end if
  end subroutine check

  subroutine dump(name, a, n)
    character(len=*), intent(in) :: name
    integer, intent(in) :: n
    real(real64), intent(in) :: a(n)
    integer :: v
    open (newunit=v, file=trim(out) // "/" // name // ".bin", access="stream", form="unformatted", &
        status="replace", action="write")
    write (v) a
    close (v)
  end subroutine dump

end program online_train
