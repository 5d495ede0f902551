!> The Fortran side of the fault catalog (tests/python/test_fault_catalog.py):
!> bad input and misuse of `use nn_closure`, one case each, always with stat.
!>
!> Usage: fault_cases FAULT_DIR [CASE...]   (every case when none is named)
!> Prints one line per case, "case|ID|STATUS|RECOVERY|MESSAGE": the stat and
!> errmsg of the faulty call (newlines as spaces), and "next-call-ok" when a
!> valid nn_forward on a good model (the one that got the fault, for faults of
!> arguments) gave W x + b, a fresh nn_load right after the fault worked, and a
!> misbehaving model gave x(1:2, :) when called as it allows ("next-call-FAILED"
!> otherwise). The same holds for the AOTInductor package plain_affine64.pt2 (the
!> same model): it gets the pt2_ faults of arguments, is called after every case,
!> and a pt2_ case also loads and runs a fresh copy. A train_ case (online
!> training, nn_train_*) also needs a step of the shared trainer (train64.pt, a
!> float64 Linear(3, 2)) to work right after it, and its sync.
program fault_cases
  use, intrinsic :: iso_fortran_env, only: real32, real64
  use, intrinsic :: ieee_arithmetic, only: ieee_value, ieee_quiet_nan, ieee_is_finite
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
      "zero_threads", "device_of_unloaded_model", "short_errmsg", "load_over_loaded_model", &
      "pt2_wrong_dtype", "pt2_wrong_rank", "pt2_wrong_shape", "pt2_grid_outside_range", "pt2_fortran_order", &
      "pt2_strided_input", "pt2_zero_size_batch", "pt2_untrusted", "pt2_export_archive", &
      "pt2_torchscript_named", "pt2_truncated", "pt2_without_contract", "pt2_missing_cpu_feature", &
      "pt2_unknown_cpu_feature", "pt2_built_for_cuda", "native_truncated", "native_bad_sizes", &
      "native_absurd_dims", "native_wrong_arith", "native_not_native", "native_wrong_dtype", &
      "native_wrong_shape", "native_strided_input", "native_cuda", "native_engine_required", &
      "train_missing_spec", "train_spec_raises", "train_wrong_shape", "train_wrong_dtype", "train_nan_loss", &
      "train_sync_other_architecture", "train_freed_handle", "train_never_created"]
  character(len=1024) :: fdir, msg
  character(len=64) :: arg
  type(nn_model) :: good, good2   ! plain_affine64.pt and the same model as plain_affine64.pt2
  type(nn_model) :: tmodel        ! train64.pt, trained by `trainer` in the train_ cases
  type(nn_trainer) :: trainer
  integer :: ierr, k, a
  logical :: same_model_ok
  real(real64), target :: x(3, 5), y(2, 5)

  call get_command_argument(1, fdir)
  do k = 1, 5
    x(:, k) = [0.25d0, 0.5d0, 0.75d0] * k  ! dyadic: W x + b is exact in any summation order
  end do
  call nn_load(good, path("plain_affine64.pt"), stat=ierr, errmsg=msg)
  if (ierr /= NN_OK) error stop "fault_cases: cannot load the good model"
  call nn_load(good2, path("plain_affine64.pt2"), stat=ierr, errmsg=msg)
  if (ierr /= NN_OK) error stop "fault_cases: cannot load the good package"
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
  call nn_train_free(trainer)
  call nn_free(tmodel)
  call nn_free(good2)
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
    real(real64), target :: u(3, 4), t(2, 5), flux(3, 4), s(1, 4), xwide(3, 10), yy(2, 5), q1(1, 5), f1(2, 5)
    real(real32), target :: x32(3, 5), y32(2, 5)
    character(len=8) :: short
    character(len=:), allocatable :: dev
    integer :: old_status
    ierr = -1
    msg = "case not run"
    x3 = 0.5d0; x6 = 0.5d0; xbad = 0.5d0; u = 0.5d0; t = 0.5d0; x32 = 0.5; q1 = 0.5d0
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
    case ("pt2_wrong_dtype")
      call nn_forward(good2, x32, y32, stat=ierr, errmsg=msg)
    case ("pt2_wrong_rank")
      call nn_forward(good2, x3, y, stat=ierr, errmsg=msg)
    case ("pt2_wrong_shape")
      call nn_forward(good2, xbad, y, stat=ierr, errmsg=msg)
    case ("pt2_grid_outside_range")   ! one cell; the package was compiled for 2 or more
      call nn_load(m, path("cells64.pt2"))
      call nn_forward(m, q1, f1, stat=ierr, errmsg=msg)
    case ("pt2_fortran_order")        ! what every Fortran call is: checked against W x + b
      call nn_forward(good2, x, yy, stat=ierr, errmsg=msg)
      if (ierr == NN_OK .and. .not. affine_right(x, yy)) call wrong_numbers()
    case ("pt2_strided_input")        ! every other column of a wider array, a section
      xwide = 0
      xwide(:, 1:10:2) = x
      call nn_forward(good2, xwide(:, 1:10:2), yy, stat=ierr, errmsg=msg)
      if (ierr == NN_OK .and. .not. affine_right(x, yy)) call wrong_numbers()
    case ("pt2_zero_size_batch")
      call nn_forward(good2, x0, y0, stat=ierr, errmsg=msg)
    case ("pt2_untrusted")
      call nn_load(m, path("plain_affine64.pt2"), trusted_sha256=repeat("0", 64), stat=ierr, errmsg=msg)
    case ("pt2_export_archive")
      call nn_load(m, path("export_archive.pt2"), stat=ierr, errmsg=msg)
    case ("pt2_torchscript_named")
      call nn_load(m, path("torchscript_named.pt2"), stat=ierr, errmsg=msg)
    case ("pt2_truncated")
      call nn_load(m, path("truncated.pt2"), stat=ierr, errmsg=msg)
    case ("pt2_without_contract")
      call nn_load(m, path("no_contract.pt2"), stat=ierr, errmsg=msg)
    case ("pt2_missing_cpu_feature")
      call nn_load(m, path("needs_missing_feature.pt2"), stat=ierr, errmsg=msg)
    case ("pt2_unknown_cpu_feature")
      call nn_load(m, path("needs_made_up_feature.pt2"), stat=ierr, errmsg=msg)
    case ("pt2_built_for_cuda")
      call nn_load(m, path("built_for_cuda.pt2"), stat=ierr, errmsg=msg)
    case ("native_truncated")
      call nn_load(m, path("truncated.nnp"), stat=ierr, errmsg=msg)
    case ("native_bad_sizes")
      call nn_load(m, path("bad_sizes.nnp"), stat=ierr, errmsg=msg)
    case ("native_absurd_dims")
      call nn_load(m, path("absurd_dims.nnp"), stat=ierr, errmsg=msg)
    case ("native_wrong_arith")
      call nn_load(m, path("wrong_arith.nnp"), stat=ierr, errmsg=msg)
    case ("native_not_native")
      call nn_load(m, path("torchscript_named.nnp"), stat=ierr, errmsg=msg)
    case ("native_wrong_dtype")
      call nn_load(m, path("plain_affine64.nnp"))
      call nn_forward(m, x32, y32, stat=ierr, errmsg=msg)
    case ("native_wrong_shape")
      call nn_load(m, path("plain_affine64.nnp"))
      call nn_forward(m, xbad, y, stat=ierr, errmsg=msg)
    case ("native_strided_input")     ! every other column of a wider array, a section: copied
      call nn_load(m, path("plain_affine64.nnp"))
      xwide = 0
      xwide(:, 1:10:2) = x
      yy = -99d0
      call nn_forward(m, xwide(:, 1:10:2), yy, stat=ierr, errmsg=msg)
      if (ierr == NN_OK .and. .not. affine_right(x, yy)) call wrong_numbers()
    case ("native_cuda")
      call nn_load(m, path("plain_affine64.nnp"), device="cuda", stat=ierr, errmsg=msg)
    case ("native_engine_required")
      call nn_load(m, path("plain_affine64.nnp"), engine="torchscript", stat=ierr, errmsg=msg)
    case ("train_missing_spec", "train_spec_raises", "train_wrong_shape", "train_wrong_dtype", "train_nan_loss", &
        "train_sync_other_architecture", "train_freed_handle", "train_never_created")
      call train_case(name)
    case default
      msg = "unknown case"
    end select
    ! a misbehaving model, called as it allows right after its fault, gives x(1:2, :)
    same_model_ok = .true.
    if (name == "model_raises") same_model_ok = gives_first_two(m, x)
    if (name == "model_returns_wrong_shape" .or. name == "model_returns_wrong_dtype" .or. &
        name == "model_returns_wrong_count") same_model_ok = gives_first_two(m, -x)
    if (name == "pt2_grid_outside_range") same_model_ok = gives_faces(m)
    call nn_free(m)
    call report(name)
  end subroutine run_case

  subroutine wrong_numbers()
    ierr = -1
    msg = "NN_OK with wrong numbers"
  end subroutine wrong_numbers

  !> y = W x + b exactly, W = [[1,2,3],[4,5,6]]/8, b = [-0.5, -0.25] (plain_affine64).
  logical function affine_right(xin, yout)
    real(real64), intent(in) :: xin(:, :), yout(:, :)
    integer :: j
    affine_right = .true.
    do j = 1, size(xin, 2)
      affine_right = affine_right .and. yout(1, j) == (xin(1, j) + 2 * xin(2, j) + 3 * xin(3, j)) / 8d0 - 0.5d0
      affine_right = affine_right .and. yout(2, j) == (4 * xin(1, j) + 5 * xin(2, j) + 6 * xin(3, j)) / 8d0 - 0.25d0
    end do
  end function affine_right

  !> cells64.pt2 on 4 cells: faces 0, the means of neighbouring cells, 0.
  logical function gives_faces(m)
    type(nn_model), intent(in) :: m
    real(real64) :: q(4, 5), faces(5, 5)
    integer :: s, j
    do j = 1, 5
      q(:, j) = [1d0, 2d0, 3d0, 5d0] * 0.25d0 * j
    end do
    faces = -99d0
    call nn_forward(m, q, faces, stat=s)
    gives_faces = s == NN_OK .and. all(faces(1, :) == 0) .and. all(faces(5, :) == 0) .and. &
        all(faces(2:4, :) == 0.5d0 * (q(1:3, :) + q(2:4, :)))
  end function gives_faces

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

  !> The online-training cases (the shared trainer is made on first use).
  subroutine train_case(name)
    character(len=*), intent(in) :: name
    type(nn_trainer) :: t, tcopy
    type(nn_model) :: other
    real(real64) :: wide(3, 5), tg(2, 5), loss
    real(real32) :: x32(3, 5), y32(2, 5)
    integer :: s
    call train_setup()
    tg = targets()
    select case (name)
    case ("train_missing_spec")
      call nn_train_create(t, tmodel, spec=path("no_such_spec.py") // ":spec", stat=ierr, errmsg=msg)
    case ("train_spec_raises")
      call nn_train_create(t, tmodel, spec=path("raising_spec.py") // ":spec", stat=ierr, errmsg=msg)
    case ("train_wrong_shape")
      wide = 0.5d0
      call nn_train_step(trainer, x, wide, loss=loss, stat=ierr, errmsg=msg)
    case ("train_wrong_dtype")
      x32 = 0.5; y32 = 0.5
      call nn_train_step(trainer, x32, y32, loss=loss, stat=ierr, errmsg=msg)
    case ("train_nan_loss")
      tg(2, 3) = ieee_value(1d0, ieee_quiet_nan)
      call nn_train_step(trainer, x, tg, loss=loss, stat=ierr, errmsg=msg)
    case ("train_sync_other_architecture")
      call nn_load(other, path("train_other.pt"))
      call nn_train_sync(trainer, other, stat=ierr, errmsg=msg)
      call nn_free(other)
    case ("train_freed_handle")
      call nn_train_create(t, tmodel)
      tcopy = t
      call nn_train_free(t)
      call nn_train_step(tcopy, x, tg, loss=loss, stat=ierr, errmsg=msg)
    case ("train_never_created")
      call nn_train_step(t, x, tg, loss=loss, stat=ierr, errmsg=msg)
    case default
      print '(2a)', "fault_cases: no training case ", name
      error stop 2
    end select
    call nn_train_free(t, stat=s)
  end subroutine train_case

  subroutine train_setup()
    if (nn_loaded(tmodel)) return
    call nn_load(tmodel, path("train64.pt"))
    call nn_train_create(trainer, tmodel, options="lr=0.01")
  end subroutine train_setup

  function targets() result(tg)
    real(real64) :: tg(2, 5)
    integer :: j
    do j = 1, 5
      tg(:, j) = [0.5d0, -0.25d0] * (j - 1)
    end do
  end function targets

  !> The shared trainer steps with a finite loss and syncs into its model.
  logical function training_works()
    real(real64) :: loss
    integer :: s1, s2
    loss = -1
    call nn_train_step(trainer, x, targets(), loss=loss, stat=s1)
    call nn_train_sync(trainer, tmodel, stat=s2)
    training_works = s1 == NN_OK .and. s2 == NN_OK .and. ieee_is_finite(loss) .and. loss >= 0
  end function training_works

  !> Print the case and prove the next valid calls work.
  subroutine report(name)
    character(len=*), intent(in) :: name
    integer :: s2, s3, j
    real(real64) :: yy(2, 5)
    type(nn_model) :: fresh
    logical :: ok
    call nn_forward(good, x, yy, stat=s2)
    ok = s2 == NN_OK .and. affine_right(x, yy)
    yy = -99d0
    call nn_forward(good2, x, yy, stat=s2)
    ok = ok .and. s2 == NN_OK .and. affine_right(x, yy)
    call nn_load(fresh, path("plain_affine64.pt"), stat=s3)
    ok = ok .and. s3 == NN_OK .and. nn_loaded(fresh) .and. same_model_ok
    call nn_free(fresh)
    if (index(name, "train_") == 1) ok = ok .and. training_works()
    if (index(name, "pt2_") == 1 .or. index(name, "native_") == 1) then   ! a fresh package/program runs too
      call nn_load(fresh, path(merge("plain_affine64.pt2", "plain_affine64.nnp", index(name, "pt2_") == 1)), &
          stat=s3)
      yy = -99d0
      if (s3 == NN_OK) call nn_forward(fresh, x, yy, stat=s3)
      ok = ok .and. s3 == NN_OK .and. affine_right(x, yy)
      call nn_free(fresh)
    end if
    do j = 1, len_trim(msg)
      if (msg(j:j) == achar(10) .or. msg(j:j) == achar(13)) msg(j:j) = " "
    end do
    print '(a, i0, a)', "case|" // name // "|", ierr, "|" // merge("next-call-ok    ", "next-call-FAILED", ok) // &
        "|" // trim(msg)
  end subroutine report
end program fault_cases
