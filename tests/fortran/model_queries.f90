!> model_queries: what a Fortran host can ask of a loaded model (nn_has_contract,
!> nn_contract, nn_num_io, nn_io, nn_policy, nn_device, nn_engine, nn_record_dir).
!> Usage: model_queries MODEL_DIR OUT_DIR. Prints one "key value" line per answer and
!> writes the contract JSON to OUT_DIR/contract.json; the test compares them with Python's.
program model_queries
  use nn_closure
  implicit none
  type(nn_model) :: m, plain
  character(len=512) :: dir, out, msg
  character(len=:), allocatable :: name, json
  integer, allocatable :: shape(:)
  integer :: ierr, nin, nout, dtype, unit

  call get_command_argument(1, dir)
  call get_command_argument(2, out)
  call nn_load(m, trim(dir) // "/two_in_two_out.pt", ood="off", nonfinite="fallback")
  print '(a, l1)', "has_contract ", nn_has_contract(m)
  call nn_num_io(m, nin, nout)
  print '(a, i0, 1x, i0)', "num_io ", nin, nout
  call nn_io(m, 2, name=name, dtype=dtype, shape=shape)
  print '(3a, i0, a, *(1x, i0))', "input2 ", name, " ", dtype, " shape", shape
  call nn_io(m, 1, name=name, dtype=dtype, shape=shape, output=.true.)
  print '(3a, i0, a, *(1x, i0))', "output1 ", name, " ", dtype, " shape", shape
  call nn_io(m, 3, name=name, stat=ierr, errmsg=msg)
  print '(a, i0, 2a)', "input3 ", ierr, " ", trim(msg)
  json = nn_contract(m)
  open (newunit=unit, file=trim(out) // "/contract.json", access="stream", form="unformatted", status="replace")
  write (unit) json
  close (unit)
  print '(2a)', "policy ", nn_policy(m)
  print '(2a)', "device ", nn_device(m)
  print '(2a)', "engine ", nn_engine(m)
  print '(3a)', "record_dir_before [", nn_record_dir(m), "]"
  call nn_record_start(m, trim(out) // "/rec")
  print '(3a)', "record_dir_during [", nn_record_dir(m), "]"
  call nn_record_stop(m)
  call nn_free(m)

  call nn_load(m, trim(dir) // "/affine_rank3.pt")
  call nn_io(m, 1, shape=shape)
  print '(a, *(1x, i0))', "rank3_input_shape", shape
  call nn_free(m)

  call nn_load(plain, trim(dir) // "/no_contract.pt")
  print '(a, l1)', "plain_has_contract ", nn_has_contract(plain)
  call nn_num_io(plain, nin, nout)
  print '(a, i0, 1x, i0)', "plain_num_io ", nin, nout
  print '(3a)', "plain_contract [", nn_contract(plain), "]"
  call nn_free(plain)
  print '(a, l1)', "unloaded_has_contract ", nn_has_contract(plain, stat=ierr)
  print '(a, i0)', "unloaded_stat ", ierr
  print '(a)', "model_queries: done"
end program model_queries
