!> One loaded model called from several OpenMP threads at once, each on its own
!> block of columns, must give the serial result bit for bit.
!>
!> Usage: omp_columns MODEL NFEAT NOUT NCOL NBLOCK ROUNDS HOST_THREADS TORCH_THREADS
!> HOST_THREADS is the size of the OpenMP teams (a num_threads clause, since
!> libtorch shares the OpenMP runtime and sets the calling thread's OpenMP
!> thread count on its first call); TORCH_THREADS = 0 leaves libtorch's
!> intra-op thread count as it is, otherwise nn_set_num_threads(TORCH_THREADS).
!> The serial reference runs the same blocks one after another. Then, ROUNDS
!> times, an `omp parallel do` runs the blocks (a) as sections of the big
!> arrays, (b) through per-thread buffers, and (c) with one block given a
!> wrong shape on purpose: that thread must get its own error and message
!> while the others succeed. Prints key=value lines and, when everything held,
!> "omp_columns: identical"; otherwise stops with a non-zero exit code.
program omp_columns
  use, intrinsic :: iso_fortran_env, only: int64, real64
  use omp_lib, only: omp_get_max_threads, omp_get_num_threads
  use nn_closure
  implicit none
  type(nn_model) :: model
  character(len=512) :: path, msg
  integer :: nfeat, nout, ncol, nblock, rounds, host_threads, torch_threads, ierr, b, r, i, j
  integer :: bad_block, wrong_status, wrong_message, mismatches, others_failed
  integer :: torch_inside_min, torch_inside_max, team_max
  real(real64), allocatable :: x(:, :), xbad(:, :), yref(:, :), ywhole(:, :), ypar(:, :)
  integer, allocatable :: first(:), last(:), stat_block(:)
  character(len=256), allocatable :: msg_block(:)

  call read_args()
  allocate (x(nfeat, ncol), yref(nout, ncol), ywhole(nout, ncol), ypar(nout, ncol))
  allocate (xbad(nfeat + 1, ncol))
  allocate (first(nblock), last(nblock), stat_block(nblock), msg_block(nblock))
  do j = 1, ncol
    do i = 1, nfeat
      x(i, j) = sin(0.37d0 * i + 0.011d0 * j) + 0.25d0 * cos(0.05d0 * i * j)
    end do
  end do
  xbad = 0.5d0
  do b = 1, nblock   ! column blocks of (nearly) equal size
    first(b) = (b - 1) * ncol / nblock + 1
    last(b) = b * ncol / nblock
  end do

  print '(a, i0)', "omp_max_threads_at_start=", omp_get_max_threads()
  call nn_load(model, trim(path), stat=ierr, errmsg=msg)
  if (ierr /= NN_OK) error stop "omp_columns: cannot load the model: " // trim(msg)
  call nn_forward(model, x, ywhole)   ! all columns at once
  print '(a, i0)', "omp_max_threads_after_first_call=", omp_get_max_threads()
  if (torch_threads > 0) then
    call nn_set_num_threads(torch_threads)
    print '(a, i0)', "omp_max_threads_after_set_num_threads=", omp_get_max_threads()
  end if
  print '(a, i0)', "torch_threads_main=", nn_get_num_threads()

  do b = 1, nblock   ! serial reference, block by block
    call nn_forward(model, x(:, first(b):last(b)), yref(:, first(b):last(b)))
  end do
  print '(a, l1)', "whole_equals_blocks=", same(ywhole, yref)

  print '(a, i0)', "process_threads_before=", process_threads()
  mismatches = 0
  wrong_status = 0
  wrong_message = 0
  others_failed = 0
  torch_inside_min = huge(1)
  torch_inside_max = 0
  team_max = 0
  do r = 1, rounds
    call sections_round()
    call buffers_round()
    call error_round(mod(r - 1, nblock) + 1)
  end do
  print '(a, i0)', "omp_team_size=", team_max
  print '(a, i0)', "process_threads=", process_threads()
  print '(a, i0)', "torch_threads_inside_min=", torch_inside_min
  print '(a, i0)', "torch_threads_inside_max=", torch_inside_max
  print '(a, i0)', "mismatched_rounds=", mismatches
  print '(a, i0)', "error_block_wrong_status=", wrong_status
  print '(a, i0)', "error_block_wrong_message=", wrong_message
  print '(a, i0)', "other_blocks_failed=", others_failed
  call nn_free(model)
  if (mismatches + wrong_status + wrong_message + others_failed > 0) error stop "omp_columns: FAILED"
  print '(a)', "omp_columns: identical"

contains

  !> Every block writes straight into its columns of ypar.
  subroutine sections_round()
    integer :: bb, st, nt
    ypar = -99d0
    stat_block = -1
    !$omp parallel do num_threads(host_threads) schedule(dynamic, 1) private(bb, st, nt)
    do bb = 1, nblock
      call nn_forward(model, x(:, first(bb):last(bb)), ypar(:, first(bb):last(bb)), stat=st)
      stat_block(bb) = st
      nt = nn_get_num_threads()
      !$omp critical (omp_columns_stats)
      torch_inside_min = min(torch_inside_min, nt)
      torch_inside_max = max(torch_inside_max, nt)
      team_max = max(team_max, omp_get_num_threads())
      !$omp end critical (omp_columns_stats)
    end do
    !$omp end parallel do
    if (any(stat_block /= NN_OK)) others_failed = others_failed + 1
    if (.not. same(ypar, yref)) mismatches = mismatches + 1
  end subroutine sections_round

  !> Each thread copies its block into its own buffers and back.
  subroutine buffers_round()
    integer :: bb, st, n
    real(real64), allocatable :: xb(:, :), yb(:, :)
    ypar = -99d0
    stat_block = -1
    !$omp parallel do num_threads(host_threads) schedule(static) private(bb, st, n, xb, yb)
    do bb = 1, nblock
      n = last(bb) - first(bb) + 1
      allocate (xb(nfeat, n), yb(nout, n))
      xb = x(:, first(bb):last(bb))
      call nn_forward(model, xb, yb, stat=st)
      stat_block(bb) = st
      ypar(:, first(bb):last(bb)) = yb
      deallocate (xb, yb)
    end do
    !$omp end parallel do
    if (any(stat_block /= NN_OK)) others_failed = others_failed + 1
    if (.not. same(ypar, yref)) mismatches = mismatches + 1
  end subroutine buffers_round

  !> Block `bad` gets an input with one feature too many; only it may fail,
  !> with its own message, while the other threads' calls succeed.
  subroutine error_round(bad)
    integer, intent(in) :: bad
    integer :: bb
    ypar = -99d0
    stat_block = -1
    msg_block = "unset"
    bad_block = bad
    !$omp parallel do num_threads(host_threads) schedule(dynamic, 1) private(bb)
    do bb = 1, nblock
      if (bb == bad_block) then
        call nn_forward(model, xbad(:, first(bb):last(bb)), ypar(:, first(bb):last(bb)), &
            stat=stat_block(bb), errmsg=msg_block(bb))
      else
        call nn_forward(model, x(:, first(bb):last(bb)), ypar(:, first(bb):last(bb)), &
            stat=stat_block(bb), errmsg=msg_block(bb))
      end if
    end do
    !$omp end parallel do
    if (stat_block(bad) /= NN_ERR_SHAPE) wrong_status = wrong_status + 1
    if (index(msg_block(bad), "expected shape") == 0) wrong_message = wrong_message + 1
    do bb = 1, nblock
      if (bb == bad) cycle
      if (stat_block(bb) /= NN_OK .or. len_trim(msg_block(bb)) /= 0) others_failed = others_failed + 1
      if (.not. same(ypar(:, first(bb):last(bb)), yref(:, first(bb):last(bb)))) mismatches = mismatches + 1
    end do
  end subroutine error_round

  !> Threads of this process now (the Threads: line of /proc/self/status), -1 if unknown.
  integer function process_threads() result(n)
    character(len=256) :: line
    integer :: unit, ios
    n = -1
    open (newunit=unit, file="/proc/self/status", action="read", status="old", iostat=ios)
    if (ios /= 0) return
    do
      read (unit, '(a)', iostat=ios) line
      if (ios /= 0) exit
      if (line(1:8) == "Threads:") then
        read (line(9:), *, iostat=ios) n
        if (ios /= 0) n = -1
      end if
    end do
    close (unit)
  end function process_threads

  !> Bit-for-bit equality (also tells -0 from +0).
  logical function same(a, c)
    real(real64), intent(in) :: a(:, :), c(:, :)
    same = all(transfer(a, 0_int64, size(a)) == transfer(c, 0_int64, size(c)))
  end function same

  subroutine read_args()
    character(len=32) :: arg
    call get_command_argument(1, path)
    call get_command_argument(2, arg); read (arg, *) nfeat
    call get_command_argument(3, arg); read (arg, *) nout
    call get_command_argument(4, arg); read (arg, *) ncol
    call get_command_argument(5, arg); read (arg, *) nblock
    call get_command_argument(6, arg); read (arg, *) rounds
    call get_command_argument(7, arg); read (arg, *) host_threads
    call get_command_argument(8, arg); read (arg, *) torch_threads
  end subroutine read_args
end program omp_columns
