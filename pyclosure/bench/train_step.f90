!> Driver of `python -m pyclosure.bench.train_step`: the time of an online
!> training step (nn_train_step) from Fortran.
!>
!> Usage: train_step MODEL NFEAT NOUT WARMUP STEPS NCOL...
!> For each NCOL: a fresh trainer on MODEL (the default spec: the model's own
!> TorchScript network, Adam lr=1e-3, MSE), WARMUP steps, then STEPS timed
!> steps on the same batch; prints "ncol NCOL median_s S loss L" per NCOL.
!> The batch: x(i, j) = sin(0.7 i + 1.3 j), y(k, j) = cos(0.4 k + 0.9 j) (1-based),
!> the same numbers the Python side builds.
program train_step
  use, intrinsic :: iso_fortran_env, only: real32, real64, int64, output_unit
  use nn_closure
  implicit none
  type(nn_model) :: model
  type(nn_trainer) :: trainer
  character(len=1024) :: path, arg, msg
  integer :: nfeat, nout, warmup, steps, ncol, a, s, i, j, ierr
  real(real32), allocatable :: x(:, :), y(:, :)
  real(real64), allocatable :: t(:)
  real(real64) :: loss
  integer(int64) :: c0, c1, rate

  call get_command_argument(1, path)
   nfeat = int_arg(2); nout = int_arg(3); warmup = int_arg(4); steps = int_arg(5)
  allocate(t(steps))
  call nn_load(model, trim(path), stat=ierr, errmsg=msg)
  if (ierr /= NN_OK) call fail("nn_load: "//trim(msg))
  do a = 6, command_argument_count()
    ncol = int_arg(a)
    allocate(x(nfeat, ncol), y(nout, ncol))
    do j = 1, ncol
      do i = 1, nfeat
        x(i, j) = real(sin(0.7d0*i + 1.3d0*j), real32)
      end do
      do i = 1, nout
        y(i, j) = real(cos(0.4d0*i + 0.9d0*j), real32)
      end do
    end do
    call nn_train_create(trainer, model, options="lr=1e-3", stat=ierr, errmsg=msg)
    if (ierr /= NN_OK) call fail("nn_train_create: "//trim(msg))
    do s = 1, warmup
      call nn_train_step(trainer, x, y, loss=loss, stat=ierr, errmsg=msg)
      if (ierr /= NN_OK) call fail("nn_train_step: "//trim(msg))
    end do
    do s = 1, steps
      call system_clock(c0, rate)
      call nn_train_step(trainer, x, y, loss=loss, stat=ierr, errmsg=msg)
      call system_clock(c1)
      if (ierr /= NN_OK) call fail("nn_train_step: "//trim(msg))
      t(s) = real(c1 - c0, real64)/real(rate, real64)
    end do
    call nn_train_free(trainer)
    write (output_unit, '(a, i0, a, es14.6, a, es14.6)') "ncol ", ncol, " median_s ", median(t), " loss ", loss
    flush (output_unit)
    deallocate(x, y)
  end do
  call nn_free(model)

contains

  integer function int_arg(k)
    integer, intent(in) :: k
    call get_command_argument(k, arg)
    read (arg, *) int_arg
  end function int_arg

  real(real64) function median(v)
    real(real64), intent(in) :: v(:)
    real(real64) :: w(size(v)), tmp
    integer :: p, q
    w = v
    do p = 2, size(w)  ! insertion sort: a few hundred values
      tmp = w(p)
      q = p - 1
      do while (q >= 1)
        if (w(q) <= tmp) exit
        w(q + 1) = w(q)
        q = q - 1
      end do
      w(q + 1) = tmp
    end do
    median = w((size(w) + 1)/2)
  end function median

  subroutine fail(text)
    character(len=*), intent(in) :: text
    error stop "train_step: "//text
  end subroutine fail

end program train_step
