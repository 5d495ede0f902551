! A host model's side: load the closure once, call it on a block of columns.
program first_host
  use, intrinsic :: iso_fortran_env, only: real64
  use nn_closure
  implicit none
  integer, parameter :: nlev = 4, ncol = 3
  real(real64) :: q(nlev, ncol), flux(nlev + 1, ncol)
  type(nn_model) :: closure
  character(len=512) :: path, msg
  integer :: ierr, k, j

  call get_command_argument(1, path)
  q = reshape([(real(k, real64) / 12, k = 0, nlev * ncol - 1)], [nlev, ncol])
  call nn_load(closure, trim(path), stat=ierr, errmsg=msg)
  if (ierr /= NN_OK) error stop trim(msg)
  call nn_forward(closure, q, flux, stat=ierr, errmsg=msg)
  if (ierr /= NN_OK) error stop trim(msg)
  print '(2a)', "engine ", nn_engine(closure)
  print '(a, 5es25.16e3)', ("flux", flux(:, j), j = 1, ncol)
  call nn_free(closure)
end program first_host
