!> nn_forward(..., on_device=.true.): the on-device route from Fortran. On a
!> CPU model (device "cpu") host arrays are where the model runs, so the route
!> must give the host route's outputs bit for bit, in both forms and with a
!> fallback; on a GPU model (device "cuda:0") the same host arrays must be
!> refused with NN_ERR_ARGUMENT naming host memory (device arrays come from
!> OpenACC host_data use_device, which gfortran cannot make here).
!> Usage: on_device MODEL_DIR DEVICE
program on_device
  use, intrinsic :: iso_fortran_env, only: real64, int32, int64
  use, intrinsic :: ieee_arithmetic, only: ieee_value, ieee_quiet_nan
  use nn_closure
  implicit none
  character(len=512) :: mdir, dev, msg
  type(nn_model) :: m
  integer :: ierr, i, j
  real(real64) :: x(16, 7), y_host(4, 7), y_dev(4, 7), y_gen(4, 7), fb(4, 7)
  integer(int32) :: flags_host(7), flags_dev(7)

  call get_command_argument(1, mdir)
  call get_command_argument(2, dev)
  do j = 1, 7
    do i = 1, 16
      x(i, j) = sin(0.37d0 * i + 1.3d0 * j)
    end do
  end do
  call nn_load(m, trim(mdir) // "/mlp64.pt", device=trim(dev), stat=ierr, errmsg=msg)
  call check("load")
  call nn_forward(m, x, y_host, stat=ierr, errmsg=msg)
  call check("host route")
  call nn_forward(m, x, y_dev, stat=ierr, errmsg=msg, on_device=.true.)
  if (trim(dev) /= "cpu") then
    if (ierr /= NN_ERR_ARGUMENT .or. index(msg, "is host memory") == 0) then
      print '(a, i0, 2a)', "on_device: expected NN_ERR_ARGUMENT for host arrays, got ", ierr, ": ", trim(msg)
      stop 1
    end if
    print '(a)', "on_device: host arrays refused on " // trim(dev) // ": " // trim(msg)
    call nn_free(m)
    stop
  end if
  call check("device route, pair form")
  call nn_forward(m, [nn_array(x)], [nn_array(y_gen)], stat=ierr, errmsg=msg, on_device=.true.)
  call check("device route, general form")
  call nn_free(m)
  call same(y_dev, y_host, "pair form")
  call same(y_gen, y_host, "general form")

  x(5, 3) = ieee_value(1d0, ieee_quiet_nan)
  fb = -2d0
  call nn_load(m, trim(mdir) // "/mlp64.pt", nonfinite="fallback", stat=ierr, errmsg=msg)
  call check("load with fallback")
  call nn_forward(m, x, y_host, stat=ierr, errmsg=msg, fallback=fb, flags=flags_host)
  call check("host route, fallback")
  call nn_forward(m, x, y_dev, stat=ierr, errmsg=msg, fallback=fb, flags=flags_dev, on_device=.true.)
  call check("device route, fallback")
  call nn_free(m)
  call same(y_dev, y_host, "fallback")
  if (any(flags_dev /= flags_host) .or. flags_dev(3) /= 3 .or. any(y_dev(:, 3) /= -2d0)) then
    print '(a, 7i3)', "on_device: flags or fallback column differ: ", flags_dev
    stop 1
  end if
  print '(a)', "on_device: identical to the host route"

contains

  subroutine check(what)
    character(len=*), intent(in) :: what
    if (ierr /= NN_OK) then
      print '(a, i0, 2a)', "on_device: " // what // " failed with ", ierr, ": ", trim(msg)
      stop 1
    end if
  end subroutine check

  subroutine same(a, b, what)
    real(real64), intent(in) :: a(:, :), b(:, :)
    character(len=*), intent(in) :: what
    if (size(a) /= size(b)) stop 1
    if (any(transfer(a, [0_int64]) /= transfer(b, [0_int64]))) then
      print '(a)', "on_device: " // what // " differs from the host route"
      stop 1
    end if
  end subroutine same
end program on_device
