!> Without stat, an nn_closure error prints its message and stops with a
!> non-zero exit code. Usage: stop_without_stat MISSING_MODEL_PATH
program stop_without_stat
  use nn_closure
  implicit none
  type(nn_model) :: m
  character(len=512) :: path
  call get_command_argument(1, path)
  call nn_load(m, trim(path))
  print '(a)', "unreachable: nn_load should have stopped the program"
end program stop_without_stat
