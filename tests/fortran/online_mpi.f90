!> online_mpi: data-parallel online training over MPI ranks. Arguments: MODEL,
!> OUT, RENDEZVOUS (a file path all ranks share, not existing yet), SPEC (""
!> for the default, or a spec for rank 1 only: "bad:FILE.py:spec"). Every
!> rank trains on its own block of columns of the same known regression
!> (rank r takes columns r*ncol+1 .. (r+1)*ncol of each step's batch) for 20
!> steps and saves OUT/ckpt_rank<r>.pt. A failed create prints the rank's
!> message and stops with a non-zero code. Prints "online mpi ran" on rank 0.
program online_mpi
  use, intrinsic :: iso_fortran_env, only: real64
  use mpi
  use nn_closure
  implicit none
  integer, parameter :: nfeat = 4, nout = 2, ncol = 32, nsteps = 20
  type(nn_model) :: model
  type(nn_trainer) :: trainer
  real(real64) :: x(nfeat, ncol), y(nout, ncol), loss
  character(len=1024) :: model_path, out, rendezvous, spec, msg, rank_text
  integer :: ierr, rank, nranks, step, i, j, col

  call MPI_Init(ierr)
  call MPI_Comm_rank(MPI_COMM_WORLD, rank, ierr)
  call MPI_Comm_size(MPI_COMM_WORLD, nranks, ierr)
  call get_command_argument(1, model_path)
  call get_command_argument(2, out)
  call get_command_argument(3, rendezvous)
  call get_command_argument(4, spec)
  write (rank_text, '(i0)') rank
  if (spec(1:4) == "bad:") then  ! the bad spec goes to rank 1 only
    if (rank == 1) then
      spec = spec(5:)
    else
      spec = ""
    end if
  end if
  call nn_load(model, trim(model_path))
  call nn_train_create(trainer, model, spec=trim(spec), options="lr=0.01", rank=rank, nranks=nranks, &
      rendezvous=trim(rendezvous), stat=ierr, errmsg=msg)
  if (ierr /= NN_OK) then
    print '(a)', "rank " // trim(rank_text) // ": " // trim(msg)
    error stop 3
  end if
  do step = 1, nsteps
    do j = 1, ncol
      col = rank * ncol + j
      do i = 1, nfeat
        x(i, j) = sin(0.7d0 * i + 1.3d0 * col + 0.37d0 * step)
      end do
    end do
    y(1, :) = 0.5d0 * x(1, :) - 0.25d0 * x(2, :) + 0.1d0
    y(2, :) = 0.3d0 * x(3, :) + 0.2d0 * x(4, :) - 0.05d0
    call nn_train_step(trainer, x, y, loss=loss)
  end do
  call nn_train_save(trainer, trim(out) // "/ckpt_rank" // trim(rank_text) // ".pt")
  call nn_train_free(trainer)
  call nn_free(model)
  call MPI_Barrier(MPI_COMM_WORLD, ierr)
  if (rank == 0) print '(a)', "online mpi ran"
  call MPI_Finalize(ierr)
end program online_mpi
