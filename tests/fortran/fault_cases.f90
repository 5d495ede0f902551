!> The Fortran side of the fault catalog (tests/python/test_fault_catalog.py):
!> bad input and misuse of `use nn_closure`, one case each, always with stat.
!>
!> Usage: fault_cases FAULT_DIR [CASE...]   (every case when none is named)
!> Prints one line per case, "case|ID|STATUS|RECOVERY|MESSAGE": the stat and
!> errmsg of the faulty call (newlines as spaces), and "next-call-ok" when a
!> valid nn_forward on a good model (the one that got the fault, for faults of
!> arguments) gave W x + b, a fresh nn_load right after the fault worked, and a
!> misbehaving model gave x(1:2, :) when called as it allows ("next-call-FAILED"
!> otherwise).
program fault_cases
  use, intrinsic :: iso_fortran_env, only: real32, real64
  use nn_closure
  implicit none
  character(len=*), parameter :: all_cases(*) = [character(len=32) :: &
      "missing_file", "directory", "empty_file", "truncated", "not_torchscript", "corrupt_contract_json", &
      "malformed_device", "cuda_without_cuda", "untrusted_file", "bad_trusted_digest", &
      "unloaded_handle", "freed_handle", "double_free", &
      "free_through_stale_copy", "wrong_number_of_inputs", "wrong_number_of_outputs", "wrong_rank", &
      "rank_6_fortran_array", "wrong_shape", "output_batch_mismatch", "batch_mismatch", "wrong_dtype", &
      "zero_size_batch", "model_raises", "model_returns_wrong_shape", "model_returns_wrong_dtype", &
      "model_returns_wrong_count", "plain_model_torch_shape_error", "plain_model_wrong_nargs", &
      "zero_threads", "device_of_unloaded_model", "short_errmsg", "load_over_loaded_model"]
  character(len=1024) :: fdir, msg
  character(len=64) :: arg
  type(nn_model) :: good
  integer :: ierr, k, a
  logical :: same_model_ok
  real(real64), target :: x(3, 5), y(2, 5)

  call get_command_argument(1, fdir)
  do k = 1, 5
    x(:, k) = [0.25d0, 0.5d0, 0.75d0] * k  ! dyadic: W x + b is exact in any summation order
  end do
  call nn_load(good, path("plain_affine64.pt"), stat=ierr, errmsg=msg)
  if (ierr /= NN_OK) error stop "fault_cases: cannot load the good model"
  if (command_argument_count() < 2) then
    do k = 1, size(all_cases)
      call run_case(trim(all_cases(k)))
    end do
  else
    do a = 2, command_argument_count()
      call get_command_argument(a, arg)
      call run_case(trim(arg))
    end do
  end if
  call nn_free(good)

contains

  function path(name) result(p)
    character(len=*), intent(in) :: name
    character(len=:), allocatable :: p
    p = trim(fdir) // "/" // name
  end function path

  subroutine run_case(name)
    character(len=*), intent(in) :: name
    type(nn_model) :: m, copy
    real(real64), target :: x3(3, 5, 1), x6(3, 5, 1, 1, 1, 1), xbad(5, 5), ybad(2, 4), x0(3, 0), y0(2, 0)
    real(real64), target :: u(3, 4), t(2, 5), flux(3, 4), s(1, 4)
    real(real32), target :: x32(3, 5), y32(2, 5)
    character(len=8) :: short
    character(len=:), allocatable :: dev
    integer :: old_status
    ierr = -1
    msg = "case not run"
    x3 = 0.5d0; x6 = 0.5d0; xbad = 0.5d0; u = 0.5d0; t = 0.5d0; x32 = 0.5
    select case (name)
    case ("missing_file")
      call nn_load(m, path("missing.pt"), stat=ierr, errmsg=msg)
    case ("directory")
      call nn_load(m, path("directory.pt"), stat=ierr, errmsg=msg)
    case ("empty_file")
      call nn_load(m, path("empty.pt"), stat=ierr, errmsg=msg)
    case ("truncated")
      call nn_load(m, path("truncated.pt"), stat=ierr, errmsg=msg)
    case ("untrusted_file")
      call nn_load(m, path("affine64.pt"), trusted_sha256=repeat("0", 64), stat=ierr, errmsg=msg)
    case ("bad_trusted_digest")
      call nn_load(m, path("affine64.pt"), trusted_sha256="abc", stat=ierr, errmsg=msg)
    case ("not_torchscript")
      call nn_load(m, path("not_torchscript.pt"), stat=ierr, errmsg=msg)
    case ("corrupt_contract_json")
      call nn_load(m, path("corrupt_contract.pt"), stat=ierr, errmsg=msg)
    case ("malformed_device")
      call nn_load(m, path("plain_affine64.pt"), device="gpu:0", stat=ierr, errmsg=msg)
    case ("cuda_without_cuda")
      call nn_load(m, path("plain_affine64.pt"), device="cuda:0", stat=ierr, errmsg=msg)
    case ("unloaded_handle")
      call nn_forward(m, x, y, stat=ierr, errmsg=msg)
    case ("freed_handle")
      call nn_load(m, path("plain_affine64.pt"))
      copy = m
      call nn_free(m)
      call nn_forward(copy, x, y, stat=ierr, errmsg=msg)
    case ("double_free")
      call nn_load(m, path("plain_affine64.pt"))
      call nn_free(m)
      call nn_free(m, stat=ierr, errmsg=msg)
    case ("free_through_stale_copy")
      call nn_load(m, path("plain_affine64.pt"))
      copy = m
      call nn_free(m)
      call nn_free(copy, stat=ierr, errmsg=msg)
    case ("wrong_number_of_inputs")
      call nn_forward(good, [nn_array(x), nn_array(x)], [nn_array(y)], stat=ierr, errmsg=msg)
    case ("wrong_number_of_outputs")
      call nn_forward(good, [nn_array(x)], [nn_array(y), nn_array(y)], stat=ierr, errmsg=msg)
    case ("wrong_rank")
      call nn_forward(good, x3, y, stat=ierr, errmsg=msg)
    case ("rank_6_fortran_array")
      call nn_forward(good, x6, y, stat=ierr, errmsg=msg)
    case ("wrong_shape")
      call nn_forward(good, xbad, y, stat=ierr, errmsg=msg)
    case ("output_batch_mismatch")
      call nn_forward(good, x, ybad, stat=ierr, errmsg=msg)
    case ("batch_mismatch")
      call nn_load(m, path("two_in_two_out.pt"))
      call nn_forward(m, [nn_array(u), nn_array(t)], [nn_array(flux), nn_array(s)], stat=ierr, errmsg=msg)
    case ("wrong_dtype")
      call nn_forward(good, x32, y32, stat=ierr, errmsg=msg)
    case ("zero_size_batch")
      call nn_forward(good, x0, y0, stat=ierr, errmsg=msg)
    case ("model_raises")
      call nn_load(m, path("raises.pt"))
      call nn_forward(m, -x, y, stat=ierr, errmsg=msg)
    case ("model_returns_wrong_shape")
      call nn_load(m, path("returns_wide.pt"))
      call nn_forward(m, x, y, stat=ierr, errmsg=msg)
    case ("model_returns_wrong_dtype")
      call nn_load(m, path("returns_float32.pt"))
      call nn_forward(m, x, y, stat=ierr, errmsg=msg)
    case ("model_returns_wrong_count")
      call nn_load(m, path("returns_two.pt"))
      call nn_forward(m, x, y, stat=ierr, errmsg=msg)
    case ("plain_model_torch_shape_error")
      call nn_load(m, path("no_contract.pt"))
      call nn_forward(m, xbad, y, stat=ierr, errmsg=msg)
    case ("plain_model_wrong_nargs")
      call nn_load(m, path("no_contract.pt"))
      call nn_forward(m, [nn_array(x), nn_array(x)], [nn_array(y)], stat=ierr, errmsg=msg)
    case ("zero_threads")
      call nn_set_num_threads(0, stat=ierr, errmsg=msg)
    case ("device_of_unloaded_model")
      dev = nn_device(m, stat=ierr, errmsg=msg)
    case ("short_errmsg")   ! a short errmsg gets the start of the message, nothing overflows
      call nn_forward(good, xbad, y, stat=ierr, errmsg=short)
      msg = short
    case ("load_over_loaded_model")   ! nn_load on a loaded model frees the old one first
      call nn_load(m, path("plain_affine64.pt"))
      copy = m
      call nn_load(m, path("plain_affine64.pt"), stat=ierr, errmsg=msg)
      if (ierr == NN_OK .and. nn_loaded(m)) then
        call nn_forward(copy, x, y, stat=old_status)
        if (old_status /= NN_ERR_HANDLE) then
          ierr = -1
          msg = "the old handle still works after nn_load replaced it"
        end if
      end if
    case default
      msg = "unknown case"
    end select
    ! a misbehaving model, called as it allows right after its fault, gives x(1:2, :)
    same_model_ok = .true.
    if (name == "model_raises") same_model_ok = gives_first_two(m, x)
    if (name == "model_returns_wrong_shape" .or. name == "model_returns_wrong_dtype" .or. &
        name == "model_returns_wrong_count") same_model_ok = gives_first_two(m, -x)
    call nn_free(m)
    call report(name)
  end subroutine run_case

  !> A valid call on a misbehaving model with an input it accepts: y = x(1:2, :) exactly.
  logical function gives_first_two(m, xin)
    type(nn_model), intent(in) :: m
    real(real64), intent(in) :: xin(3, 5)
    real(real64) :: yy(2, 5)
    integer :: s
    yy = -99d0
    call nn_forward(m, xin, yy, stat=s)
    gives_first_two = s == NN_OK .and. all(yy == xin(1:2, :))
  end function gives_first_two

  !> Print the case and prove the next valid calls work.
  subroutine report(name)
    character(len=*), intent(in) :: name
    integer :: s2, s3, j
    real(real64) :: yy(2, 5)
    type(nn_model) :: fresh
    logical :: ok
    call nn_forward(good, x, yy, stat=s2)
    ok = s2 == NN_OK
    do j = 1, 5   ! W = [[1,2,3],[4,5,6]]/8, b = [-0.5, -0.25]
      ok = ok .and. yy(1, j) == (x(1, j) + 2 * x(2, j) + 3 * x(3, j)) / 8d0 - 0.5d0
      ok = ok .and. yy(2, j) == (4 * x(1, j) + 5 * x(2, j) + 6 * x(3, j)) / 8d0 - 0.25d0
    end do
    call nn_load(fresh, path("plain_affine64.pt"), stat=s3)
    ok = ok .and. s3 == NN_OK .and. nn_loaded(fresh) .and. same_model_ok
    call nn_free(fresh)
    do j = 1, len_trim(msg)
      if (msg(j:j) == achar(10) .or. msg(j:j) == achar(13)) msg(j:j) = " "
    end do
    print '(a, i0, a)', "case|" // name // "|", ierr, "|" // merge("next-call-ok    ", "next-call-FAILED", ok) // &
        "|" // trim(msg)
  end subroutine report
end program fault_cases
