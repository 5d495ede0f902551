!> Every kind of bad input from Fortran, with stat: prints one line per case,
!> "case|NAME|STATUS|next-call-ok|MESSAGE", where next-call-ok says that a
!> valid call on the same model right after the failure gave the known values
!> of plain_affine64.pt, W x + b, in every element. Usage: error_cases MODEL_DIR
program error_cases
  use, intrinsic :: iso_fortran_env, only: real32, real64
  use nn_closure
  implicit none
  character(len=512) :: mdir, msg
  type(nn_model) :: good, m, copy
  integer :: ierr, i, j
  real(real64) :: x(3, 5), y(2, 5), xbad(4, 5), x3(3, 5, 1), x6(1, 1, 1, 1, 1, 1)
  real(real32) :: x32(3, 5), y32(2, 5)

  call get_command_argument(1, mdir)
  do j = 1, 5   ! dyadic, both signs: W x + b is exact in any summation order
    do i = 1, 3
      x(i, j) = 0.25d0 * (i + 3 * (j - 1)) - 1d0
    end do
  end do
  call nn_load(good, trim(mdir) // "/plain_affine64.pt", stat=ierr, errmsg=msg)
  if (ierr /= NN_OK) error stop "cannot load the good model"

  call nn_load(m, trim(mdir) // "/missing.pt", stat=ierr, errmsg=msg)
  call report("missing_file")
  call nn_load(m, trim(mdir) // "/not_torchscript.pt", stat=ierr, errmsg=msg)
  call report("not_torchscript")
  call nn_load(m, trim(mdir) // "/truncated.pt", stat=ierr, errmsg=msg)
  call report("truncated")
  call nn_forward(good, x3, y, stat=ierr, errmsg=msg)
  call report("wrong_rank")
  call nn_forward(good, xbad, y, stat=ierr, errmsg=msg)
  call report("wrong_shape")
  x32 = 0.5
  call nn_forward(good, x32, y32, stat=ierr, errmsg=msg)
  call report("wrong_dtype")
  call nn_forward(good, [nn_array(x), nn_array(x)], [nn_array(y)], stat=ierr, errmsg=msg)
  call report("wrong_nargs")
  call nn_forward(m, x, y, stat=ierr, errmsg=msg)
  call report("unloaded")
  call nn_load(m, trim(mdir) // "/affine64.pt", stat=ierr, errmsg=msg)
  copy = m
  call nn_free(m)
  call nn_forward(copy, x, y, stat=ierr, errmsg=msg)   ! a copy of the handle, really freed
  call report("freed")
  call nn_free(m, stat=ierr, errmsg=msg)
  call report("double_free")
  call nn_load(m, trim(mdir) // "/affine64.pt", device="cuda:0", stat=ierr, errmsg=msg)
  call report("cuda_without_cuda")
  call nn_load(m, trim(mdir) // "/affine64.pt", device="gpu:0", stat=ierr, errmsg=msg)
  call report("malformed_device")
  call nn_forward(good, x6, y, stat=ierr, errmsg=msg)
  call report("rank6")
  call nn_load(m, trim(mdir) // "/no_contract.pt", stat=ierr, errmsg=msg)
  if (ierr /= NN_OK) error stop "cannot load the plain TorchScript model"
  call nn_forward(m, [nn_array(x), nn_array(x)], [nn_array(y)], stat=ierr, errmsg=msg)
  call report("no_contract_wrong_nargs")
  call nn_forward(m, x, y, stat=ierr, errmsg=msg)
  call report("no_contract_runs")
  call nn_free(m)
  open (newunit=ierr, file="not_a_dir")
  close (ierr)
  call nn_record_start(good, "not_a_dir/records", stat=ierr, errmsg=msg)
  call report("record_into_a_file")
  call nn_record_start(good, "records_f", every=0, stat=ierr, errmsg=msg)
  call report("record_every_zero")
  call nn_record_start(good, "records_f", stat=ierr, errmsg=msg)
  if (ierr /= NN_OK) error stop "cannot start recording"
  call nn_record_start(good, "records_g", stat=ierr, errmsg=msg)
  call report("record_twice")
  call nn_forward(good, x, y)
  call nn_record_array(good, "no spaces", x, stat=ierr, errmsg=msg)
  call report("record_bad_name")
  call nn_record_array(good, "x6", x6, stat=ierr, errmsg=msg)
  call report("record_rank6")
  call nn_record_stop(good, stat=ierr, errmsg=msg)
  call report("record_stop")

contains

  !> Print the case and prove the next valid call on the good model gives W x + b,
  !> W = [[1,2,3],[4,5,6]]/8, b = [-0.5, -0.25], in every element.
  subroutine report(name)
    character(len=*), intent(in) :: name
    integer :: status, s2, k
    character(len=512) :: message
    real(real64) :: yy(2, 5)
    logical :: ok
    status = ierr
    message = msg
    yy = -99d0
    call nn_forward(good, x, yy, stat=s2)
    ok = s2 == NN_OK
    do k = 1, 5
      ok = ok .and. yy(1, k) == (x(1, k) + 2 * x(2, k) + 3 * x(3, k)) / 8d0 - 0.5d0
      ok = ok .and. yy(2, k) == (4 * x(1, k) + 5 * x(2, k) + 6 * x(3, k)) / 8d0 - 0.25d0
    end do
    print '(a, i0, a)', "case|" // name // "|", status, "|" // merge("next-call-ok    ", "next-call-FAILED", ok) // &
        "|" // trim(message)
  end subroutine report
end program error_cases
