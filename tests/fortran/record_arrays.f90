!> Recording from Fortran: a forward call plus host arrays of rank 0, 2 and a
!> reversed strided section, read back by the Python test with numpy.
!> Usage: record_arrays MODEL DIR
program record_arrays
  use, intrinsic :: iso_fortran_env, only: real64
  use nn_closure
  implicit none
  character(len=512) :: path, dir
  type(nn_model) :: m
  real(real64), target :: x(3, 5), y(2, 5), g(4, 6)
  integer :: i, j

  call get_command_argument(1, path)
  call get_command_argument(2, dir)
  do j = 1, 5
    do i = 1, 3
      x(i, j) = 0.1d0 * i + j
    end do
  end do
  do j = 1, 6
    do i = 1, 4
      g(i, j) = i + 10 * j
    end do
  end do
  call nn_load(m, trim(path))
  call nn_record_start(m, trim(dir), every=2, max_mb=16)
  call nn_forward(m, x, y)               ! call 1: recorded
  call nn_record_array(m, "grid", g)
  call nn_record_array(m, "section", g(1:4:2, 6:1:-1))
  call nn_record_array(m, "dt", 0.5d0)
  call nn_forward(m, x, y)               ! call 2: not recorded, host arrays ignored
  call nn_record_array(m, "grid", g)
  call nn_forward(m, 2 * x, y)           ! call 3: recorded, written when freed
  call nn_free(m)
  print '(a)', "recorded"
end program record_arrays
