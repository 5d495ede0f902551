!> mpi_columns: a learned closure in an MPI host model. Every rank loads the
!> model in-process (device="auto": the rank's GPU when there is one, else the
!> CPU), runs its own block of a global set of columns, and rank 0 gathers the
!> blocks and checks them against a serial run of the same blocks on rank 0.
!>
!> Usage: mpirun -np N mpi_columns MODEL NFEAT NOUT NCOL [OUT] [--bad-path-on-rank R PATH]
!>                                                         [--bad-shape-on-rank R]
!>   OUT      write the gathered outputs (NOUT, NCOL) as a raw float64 stream
!>   --bad-path-on-rank R PATH   rank R loads PATH instead of MODEL
!>   --bad-shape-on-rank R       rank R passes an input with one feature too many
!>
!> A load that fails on any rank stops the whole job cleanly: every rank learns
!> of it through one MPI_Allreduce, the failing rank prints its own message,
!> and all ranks finalise MPI and stop with exit code 2. A failed forward call
!> calls MPI_Abort after printing the rank's message, since the other ranks may
!> already wait in the gather. Prints "mpi_columns: identical on N ranks" when
!> the gathered result equals the serial one bit for bit.
program mpi_columns
  use, intrinsic :: iso_fortran_env, only: error_unit, int64, real64
  use mpi_f08
  use nn_closure
  implicit none
  type(nn_model) :: model
  integer :: rank, nranks, nfeat, nout, ncol, ierr, nfailed, failed, bad_path_rank, bad_shape_rank
  integer :: first, last, r, j, i, unit
  character(len=1024) :: path, my_path, out_path, bad_path, msg
  real(real64), allocatable :: x(:, :), y(:, :), xall(:, :), yall(:, :), yref(:, :)
  integer, allocatable :: counts(:), displs(:)

  call MPI_Init()
  call MPI_Comm_rank(MPI_COMM_WORLD, rank)
  call MPI_Comm_size(MPI_COMM_WORLD, nranks)
  call read_args()

  ! One intra-op thread per rank: the ranks already use the cores.
  call nn_set_num_threads(1)
  my_path = path
  if (rank == bad_path_rank) my_path = bad_path
  call nn_load(model, trim(my_path), device="auto", stat=ierr, errmsg=msg)
  if (ierr /= NN_OK) then
    write (error_unit, '(a, i0, a)') "mpi_columns: rank ", rank, ": nn_load('" // trim(my_path) // "') failed: " // &
        trim(msg)
    flush (error_unit)
  end if
  failed = merge(1, 0, ierr /= NN_OK)
  call MPI_Allreduce(failed, nfailed, 1, MPI_INTEGER, MPI_SUM, MPI_COMM_WORLD)
  if (nfailed > 0) then
    if (rank == 0) write (error_unit, '(a, i0, a)') "mpi_columns: ", nfailed, &
        " rank(s) could not load the model; stopping all ranks"
    call nn_free(model)
    call MPI_Finalize()
    stop 2
  end if
  print '(a, i0, a, i0, a)', "mpi_columns: rank ", rank, " of ", nranks, " runs on " // nn_device(model)

  call block_of(rank, first, last)
  allocate (x(nfeat, first:last), y(nout, first:last))
  do j = first, last
    do i = 1, nfeat
      x(i, j) = column_value(i, j)
    end do
  end do
  if (rank == bad_shape_rank) then
    deallocate (x)
    allocate (x(nfeat + 1, first:last))
    x = 0.5d0
  end if
  call nn_forward(model, x, y, stat=ierr, errmsg=msg)
  if (ierr /= NN_OK) then
    write (error_unit, '(a, i0, a)') "mpi_columns: rank ", rank, ": nn_forward failed: " // trim(msg)
    flush (error_unit)
    call MPI_Abort(MPI_COMM_WORLD, 3)
  end if

  allocate (counts(nranks), displs(nranks))
  do r = 0, nranks - 1
    call block_of(r, i, j)
    counts(r + 1) = (j - i + 1) * nout
    displs(r + 1) = (i - 1) * nout
  end do
  if (rank == 0) then
    allocate (yall(nout, ncol))
  else
    allocate (yall(1, 1))
  end if
  call MPI_Gatherv(y, size(y), MPI_DOUBLE_PRECISION, yall, counts, displs, MPI_DOUBLE_PRECISION, 0, &
      MPI_COMM_WORLD)

  if (rank == 0) call check_on_rank0()
  call nn_free(model)
  call MPI_Finalize()

contains

  !> The serial reference: rank 0 runs every rank's block itself, one after
  !> another (the same blocks, so the same columns per call), and compares.
  subroutine check_on_rank0()
    allocate (xall(nfeat, ncol), yref(nout, ncol))
    do j = 1, ncol
      do i = 1, nfeat
        xall(i, j) = column_value(i, j)
      end do
    end do
    do r = 0, nranks - 1
      call block_of(r, first, last)
      call nn_forward(model, xall(:, first:last), yref(:, first:last))
    end do
    if (len_trim(out_path) > 0) then
      open (newunit=unit, file=trim(out_path), access="stream", form="unformatted", status="replace")
      write (unit) yall
      close (unit)
    end if
    if (any(transfer(yall, 0_int64, size(yall)) /= transfer(yref, 0_int64, size(yref)))) then
      write (error_unit, '(a)') "mpi_columns: the gathered result differs from the serial run"
      call MPI_Abort(MPI_COMM_WORLD, 4)
    end if
    print '(a, i0, a)', "mpi_columns: identical on ", nranks, " ranks"
  end subroutine check_on_rank0

  !> Columns first..last of rank r: the global columns split as evenly as possible.
  subroutine block_of(r, first, last)
    integer, intent(in) :: r
    integer, intent(out) :: first, last
    first = r * ncol / nranks + 1
    last = (r + 1) * ncol / nranks
  end subroutine block_of

  !> The input of feature i in global column j: the same on every rank.
  pure real(real64) function column_value(i, j)
    integer, intent(in) :: i, j
    column_value = sin(0.37d0 * i + 0.011d0 * j) + 0.25d0 * cos(0.05d0 * i * j)
  end function column_value

  subroutine read_args()
    character(len=1024) :: arg
    integer :: k
    call get_command_argument(1, path)
    call get_command_argument(2, arg); read (arg, *) nfeat
    call get_command_argument(3, arg); read (arg, *) nout
    call get_command_argument(4, arg); read (arg, *) ncol
    out_path = ""
    bad_path_rank = -1
    bad_shape_rank = -1
    k = 5
    do while (k <= command_argument_count())
      call get_command_argument(k, arg)
      if (arg == "--bad-path-on-rank") then
        call get_command_argument(k + 1, arg); read (arg, *) bad_path_rank
        call get_command_argument(k + 2, bad_path)
        k = k + 3
      else if (arg == "--bad-shape-on-rank") then
        call get_command_argument(k + 1, arg); read (arg, *) bad_shape_rank
        k = k + 2
      else
        out_path = arg
        k = k + 1
      end if
    end do
  end subroutine read_args
end program mpi_columns
