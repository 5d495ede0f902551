!> engine_option: nn_load(engine=) from Fortran. A file for another engine is refused with
!> NN_ERR_FORMAT and a message naming both; a file of the required engine loads.
!> Usage: engine_option NATIVE.nnp TORCHSCRIPT.pt; prints "engine_option: done".
program engine_option
  use nn_closure
  implicit none
  type(nn_model) :: m
  character(len=512) :: native, script, msg
  integer :: ierr
  logical :: ok

  call get_command_argument(1, native)
  call get_command_argument(2, script)
  ok = .true.
  call nn_load(m, trim(native), engine="torchscript", stat=ierr, errmsg=msg)
  print '(a, i0, 2a)', "native file, engine=torchscript: ", ierr, " ", trim(msg)
  ok = ok .and. ierr == NN_ERR_FORMAT .and. index(msg, "(engine native), but the load option engine=torchscript") > 0
  call nn_load(m, trim(script), engine="native", stat=ierr, errmsg=msg)
  print '(a, i0, 2a)', "TorchScript file, engine=native: ", ierr, " ", trim(msg)
  ok = ok .and. ierr == NN_ERR_FORMAT .and. .not. nn_loaded(m)
  call nn_load(m, trim(native), engine="native", stat=ierr, errmsg=msg)
  ok = ok .and. ierr == NN_OK
  if (ierr == NN_OK) ok = ok .and. nn_engine(m) == "native"
  call nn_free(m)
  if (ok) then
    print '(a)', "engine_option: done"
  else
    print '(a)', "engine_option: FAILED"
    error stop 1
  end if
end program engine_option
