!> bench_embedded: the embedded-Python route of the coupling benchmark, the
!> way Fortran models call PyTorch today (forpy, call_py_fort): the program
!> starts a Python interpreter in-process (a cffi-embedded library,
!> libpyclosure_bench_embed) that runs the TorchScript module with torch on
!> numpy views of the Fortran arrays and copies the result back.
!> Commands and output: see bench_driver.
module bench_embedded_route
  use, intrinsic :: iso_c_binding, only: c_char, c_int, c_int64_t, c_loc, c_null_char, c_ptr
  use bench_driver, only: batch, double, x4, x8, y4, y8
  implicit none
  private
  public :: load, forward

  interface
    !> Start Python, load the module onto device with threads threads (0: ok).
    integer(c_int) function bench_py_load(path, dtype, nin, nout, threads, device) bind(c, name="bench_py_load")
      import :: c_char, c_int, c_int64_t
      character(kind=c_char), intent(in) :: path(*), device(*)
      integer(c_int), value :: dtype, threads
      integer(c_int64_t), value :: nin, nout
    end function bench_py_load

    !> y(nout, batch) = model(x(nin, batch)) through Python (0: ok).
    integer(c_int) function bench_py_run(x, y, batch) bind(c, name="bench_py_run")
      import :: c_int, c_int64_t, c_ptr
      type(c_ptr), value :: x, y
      integer(c_int64_t), value :: batch
    end function bench_py_run
  end interface

contains

  !> Load the model in the embedded interpreter; ierr = 0 on success.
  integer function load(path, nin, nout, threads, device) result(ierr)
    character(len=*), intent(in) :: path, device
    integer(c_int64_t), intent(in) :: nin, nout
    integer, intent(in) :: threads
    integer(c_int) :: code
    code = 1
    if (double) code = 2
    ierr = bench_py_load(path // c_null_char, code, nin, nout, int(threads, c_int), device // c_null_char)
  end function load

  !> One call through the embedded interpreter over the driver's current arrays.
  subroutine forward(ierr, errmsg)
    integer, intent(out) :: ierr
    character(len=*), intent(inout) :: errmsg
    if (double) then
      ierr = bench_py_run(c_loc(x8), c_loc(y8), batch)
    else
      ierr = bench_py_run(c_loc(x4), c_loc(y4), batch)
    end if
    if (ierr /= 0) errmsg = "the embedded Python call failed (its traceback is above)"
  end subroutine forward

end module bench_embedded_route

program bench_embedded
  use bench_driver, only: device, fail, model_path, nin, nout, read_arguments, serve, threads
  use bench_embedded_route, only: forward, load
  implicit none

  call read_arguments()
  if (load(model_path, nin, nout, threads, device) /= 0) then
    call fail("the embedded Python interpreter could not load " // model_path // " (its traceback is above)")
  end if
  call serve(forward)
end program bench_embedded
