!> A host that runs pyclosure-exported model files of any engine through
!> `use nn_closure`, built with nothing but `pyclosure config` flags.
!>
!> Usage: model_host MODEL_DIR OUT_DIR THREADS FILE...
!> With THREADS bridge threads, loads each FILE of MODEL_DIR once and runs it on
!> batches of 1, 2, 3, 7, 64, 256 and 4096 columns. A file's stem names its
!> fixture model: mlp32 (float32, 30 -> 31), mlp64 (float64, 16 -> 4),
!> periodic64 (float64, 16 cells -> 16 faces), two_in_two_out ((u 3, t 2) ->
!> (flux 3, s 1)). Each call's inputs then outputs are written raw (Fortran
!> order) to OUT_DIR/STEM_BATCH.bin for Python to compare. Prints "engine FILE
!> ENGINE" per file and "model_host: done" at the end; stops with a message and
!> a non-zero exit code on any failed call.
program model_host
  use, intrinsic :: iso_fortran_env, only: real32, real64
  use nn_closure
  implicit none
  integer, parameter :: batches(*) = [1, 2, 3, 7, 64, 256, 4096]
  character(len=1024) :: dir, out
  character(len=256), allocatable :: files(:)
  character(len=16) :: arg
  type(nn_model), allocatable :: models(:)
  integer :: f, k, threads

  call get_command_argument(1, dir)
  call get_command_argument(2, out)
  call get_command_argument(3, arg)
  read (arg, *) threads
  call nn_set_num_threads(threads)
  allocate (files(command_argument_count() - 3), models(command_argument_count() - 3))
  do f = 1, size(files)
    call get_command_argument(3 + f, files(f))
    call open_model(models(f), trim(files(f)))
  end do
  do k = 1, size(batches)   ! load once, run many
    do f = 1, size(files)
      call run(models(f), trim(files(f)), batches(k))
    end do
  end do
  do f = 1, size(files)
    call nn_free(models(f))
  end do
  print '(a)', "model_host: done"

contains

  !> Deterministic inputs in [-1.25, 1.25], different per feature, column and seed.
  pure real(real64) function value(i, j, seed)
    integer, intent(in) :: i, j, seed
    value = sin(0.37d0 * i + 0.011d0 * j + seed) + 0.25d0 * cos(0.05d0 * i * j)
  end function value

  !> Columns of deterministic inputs, (nfeat, n), for one seed.
  function columns(nfeat, n, seed) result(x)
    integer, intent(in) :: nfeat, n, seed
    real(real64) :: x(nfeat, n)
    integer :: i, j
    do j = 1, n
      do i = 1, nfeat
        x(i, j) = value(i, j, seed)
      end do
    end do
  end function columns

  subroutine open_model(m, name)
    type(nn_model), intent(inout) :: m
    character(len=*), intent(in) :: name
    character(len=512) :: msg
    integer :: ierr
    call nn_load(m, trim(dir) // "/" // name, stat=ierr, errmsg=msg)
    if (ierr /= NN_OK) error stop "model_host: cannot load " // name // ": " // trim(msg)
    print '(a)', "engine " // name // " " // nn_engine(m)
  end subroutine open_model

  subroutine check(ierr, msg, name)
    integer, intent(in) :: ierr
    character(len=*), intent(in) :: msg, name
    if (ierr /= NN_OK) error stop "model_host: forward of " // name // " failed: " // trim(msg)
  end subroutine check

  integer function open_out(stem, n) result(u)
    character(len=*), intent(in) :: stem
    integer, intent(in) :: n
    character(len=16) :: tag
    write (tag, '(i0)') n
    open (newunit=u, file=trim(out) // "/" // stem // "_" // trim(tag) // ".bin", access="stream", &
        form="unformatted", status="replace")
  end function open_out

  !> One call of the model in file ``name`` on ``n`` columns, written to its output file.
  subroutine run(m, name, n)
    type(nn_model), intent(in) :: m
    character(len=*), intent(in) :: name
    integer, intent(in) :: n
    character(len=:), allocatable :: stem
    stem = name(:index(name, ".", back=.true.) - 1)
    select case (stem)
    case ("mlp32")
      call run_mlp32(m, name, n)
    case ("mlp64")
      call run_one(m, name, stem, columns(16, n, 2), 4)
    case ("periodic64")
      call run_one(m, name, stem, columns(16, n, 3), 16)
    case ("two_in_two_out")
      call run_two(m, name, n)
    case default
      error stop "model_host: no fixture model is named " // stem
    end select
  end subroutine run

  subroutine run_mlp32(m, name, n)
    type(nn_model), intent(in) :: m
    character(len=*), intent(in) :: name
    integer, intent(in) :: n
    real(real32), allocatable :: x(:, :), y(:, :)
    character(len=512) :: msg
    integer :: ierr, u
    x = real(columns(30, n, 1), real32)
    allocate (y(31, n))
    y = -99
    call nn_forward(m, x, y, stat=ierr, errmsg=msg)
    call check(ierr, msg, name)
    u = open_out("mlp32", n)
    write (u) x, y
    close (u)
  end subroutine run_mlp32

  !> A float64 model of one input and one output with nout features.
  subroutine run_one(m, name, stem, x, nout)
    type(nn_model), intent(in) :: m
    character(len=*), intent(in) :: name, stem
    real(real64), contiguous, intent(in) :: x(:, :)
    integer, intent(in) :: nout
    real(real64), allocatable :: y(:, :)
    character(len=512) :: msg
    integer :: ierr, u
    allocate (y(nout, size(x, 2)))
    y = -99
    call nn_forward(m, x, y, stat=ierr, errmsg=msg)
    call check(ierr, msg, name)
    u = open_out(stem, size(x, 2))
    write (u) x, y
    close (u)
  end subroutine run_one

  subroutine run_two(m, name, n)
    type(nn_model), intent(in) :: m
    character(len=*), intent(in) :: name
    integer, intent(in) :: n
    real(real64), allocatable, target :: uu(:, :), t(:, :), flux(:, :), s(:, :)
    character(len=512) :: msg
    integer :: ierr, u
    uu = columns(3, n, 3)
    t = columns(2, n, 4)
    allocate (flux(3, n), s(1, n))
    flux = -99
    s = -99
    call nn_forward(m, [nn_array(uu), nn_array(t)], [nn_array(flux), nn_array(s)], stat=ierr, errmsg=msg)
    call check(ierr, msg, name)
    u = open_out("two_in_two_out", n)
    write (u) uu, t, flux, s
    close (u)
  end subroutine run_two
end program model_host
