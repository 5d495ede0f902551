!> acc_forward: an OpenACC host passes arrays that live on the GPU to nn_forward,
!> with no host round trip (host_data use_device, on_device=.true.), and checks
!> the outputs against the host route bit for bit. Prints the time per call of
!> both routes. Build with nvfortran -acc and the module sources:
!>   nvfortran -acc $(pyclosure config --fortran-source) acc_forward.f90 \
!>       $(pyclosure config --ldflags) -lnnclosure
!> Usage: acc_forward MODEL.pt   (the MLP of make_mlp.py: 30 features in, 31 out)
program acc_forward
  use, intrinsic :: iso_fortran_env, only: real32, int32, int64
  use nn_closure
  implicit none
  integer, parameter :: nin = 30, nout = 31, ncol = 4096, calls = 200
  real(real32) :: x(nin, ncol), y_host(nout, ncol), y_dev(nout, ncol)
  type(nn_model) :: m
  character(len=512) :: path, msg
  integer :: ierr, k
  integer(int64) :: t0, t1, rate
  real :: host_us, dev_us

  call get_command_argument(1, path)
  call random_number(x)
  call nn_load(m, trim(path), device="cuda:0", stat=ierr, errmsg=msg)
  call check("load")
  call nn_forward(m, x, y_host, stat=ierr, errmsg=msg)  ! host arrays: copied in and out by the bridge
  call check("host route")

  !$acc data copyin(x) create(y_dev)
  !$acc host_data use_device(x, y_dev)
  call nn_forward(m, x, y_dev, stat=ierr, errmsg=msg, on_device=.true.)
  !$acc end host_data
  call check("device route")
  call system_clock(t0, rate)
  do k = 1, calls
    !$acc host_data use_device(x, y_dev)
    call nn_forward(m, x, y_dev, stat=ierr, errmsg=msg, on_device=.true.)  ! outputs ready on return
    !$acc end host_data
  end do
  call system_clock(t1)
  dev_us = real(t1 - t0) / real(rate) / calls * 1e6
  !$acc update self(y_dev)
  !$acc end data

  call system_clock(t0)
  do k = 1, calls
    call nn_forward(m, x, y_host, stat=ierr, errmsg=msg)
  end do
  call system_clock(t1)
  host_us = real(t1 - t0) / real(rate) / calls * 1e6
  call nn_free(m)
  print '(a, i0, a, f9.1, a, f9.1, a)', "acc_forward: ", ncol, " columns: host arrays ", host_us, &
      " us per call, device-resident ", dev_us, " us per call"
  if (any(transfer(y_dev, [0_int32]) /= transfer(y_host, [0_int32]))) then
    print '(a)', "acc_forward: device-resident outputs DIFFER from the host route's"
    stop 1
  end if
  print '(a)', "acc_forward: device-resident outputs equal the host route's bit for bit"

contains

  subroutine check(what)
    character(len=*), intent(in) :: what
    if (ierr /= NN_OK) then
      print '(a)', "acc_forward: " // what // ": " // trim(msg)
      stop 1
    end if
  end subroutine check
end program acc_forward
