!> A tiny downstream host model: built outside the source tree from what
!> `pyclosure config` (or pkg-config, or CMake) prints. Loads the model given
!> on the command line, runs 3 columns, prints the fluxes, checks them by hand.
program host_program
  use, intrinsic :: iso_fortran_env, only: real64
  use nn_closure
  implicit none
  type(nn_model) :: closure
  real(real64) :: state(3, 4), flux(2, 4)
  character(len=512) :: path, msg
  integer :: ierr, j
  call get_command_argument(1, path)
  call nn_load(closure, trim(path), device="cpu", stat=ierr, errmsg=msg)
  if (ierr /= NN_OK) error stop trim(msg)
  do j = 1, 4
    state(:, j) = [1d0, 2d0, 3d0] * j
  end do
  call nn_forward(closure, state, flux)
  do j = 1, 4   ! plain affine: W = [[1,2,3],[4,5,6]]/8, b = [-0.5, -0.25]
    if (flux(1, j) /= 14d0 * j / 8d0 - 0.5d0 .or. flux(2, j) /= 32d0 * j / 8d0 - 0.25d0) error stop "wrong numbers"
  end do
  print '(a, 8f8.3)', "host_program flux:", flux
  call nn_free(closure)
end program host_program
