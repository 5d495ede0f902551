!> bench_fortran: the Fortran route of the coupling benchmark. It calls the
!> closure through `use nn_closure` in its one-call form,
!> nn_forward(model, x, y, stat=, errmsg=), as a host model does every step.
!> (nn_closure has no bind-once form yet, so there is nothing else to time.)
!> Commands and output: see bench_driver.
module bench_fortran_route
  use bench_driver, only: double, x4, x8, y4, y8
  use nn_closure, only: nn_model, nn_forward
  implicit none
  private
  public :: model, forward

  type(nn_model) :: model

contains

  !> One nn_forward call over the driver's current arrays.
  subroutine forward(ierr, errmsg)
    integer, intent(out) :: ierr
    character(len=*), intent(inout) :: errmsg
    if (double) then
      call nn_forward(model, x8, y8, stat=ierr, errmsg=errmsg)
    else
      call nn_forward(model, x4, y4, stat=ierr, errmsg=errmsg)
    end if
  end subroutine forward

end module bench_fortran_route

program bench_fortran
  use bench_driver, only: device, fail, model_path, read_arguments, serve, threads
  use bench_fortran_route, only: forward, model
  use nn_closure, only: NN_OK, nn_free, nn_load, nn_set_num_threads
  implicit none
  integer :: ierr
  character(len=1024) :: errmsg

  call read_arguments()
  call nn_set_num_threads(threads, stat=ierr, errmsg=errmsg)
  if (ierr /= NN_OK) call fail(trim(errmsg))
  call nn_load(model, model_path, device=device, stat=ierr, errmsg=errmsg)
  if (ierr /= NN_OK) call fail(trim(errmsg))
  call serve(forward)
  call nn_free(model)
end program bench_fortran
