!> A host that runs pyclosure-exported native programs (.nnp) through
!> `use nn_closure`, built with nothing but `pyclosure config` flags.
!>
!> Usage: native_host PROGRAM_DIR OUT_DIR THREADS
!> With THREADS bridge threads, runs mlp32.nnp (float32, 30 -> 31), mlp64.nnp
!> (float64, 16 -> 4) and periodic64.nnp (float64, 16 cells -> 16 faces) on
!> batches of 1, 2, 3, 7, 64, 256 and 4096 columns, and writes each call's input
!> then output, raw (Fortran order), to OUT_DIR/NAME_BATCH.bin for Python to
!> compare. Prints "engine NAME ENGINE" per program and "native_host: done" at
!> the end; stops with a message and a non-zero exit code on any failed call.
program native_host
  use, intrinsic :: iso_fortran_env, only: real32, real64
  use nn_closure
  implicit none
  integer, parameter :: batches(*) = [1, 2, 3, 7, 64, 256, 4096]
  character(len=1024) :: dir, out
  character(len=16) :: arg
  type(nn_model) :: m32, m64, per
  integer :: k, threads

  call get_command_argument(1, dir)
  call get_command_argument(2, out)
  call get_command_argument(3, arg)
  read (arg, *) threads
  call nn_set_num_threads(threads)
  call open_model(m32, "mlp32.nnp")
  call open_model(m64, "mlp64.nnp")
  call open_model(per, "periodic64.nnp")
  do k = 1, size(batches)   ! load once, run many
    call run_mlp32(m32, batches(k))
    call run_mlp64(m64, batches(k))
    call run_periodic(per, batches(k))
  end do
  call nn_free(m32)
  call nn_free(m64)
  call nn_free(per)
  print '(a)', "native_host: done"

contains

  !> Deterministic inputs in [-1.25, 1.25], different per feature, column and seed.
  pure real(real64) function value(i, j, seed)
    integer, intent(in) :: i, j, seed
    value = sin(0.37d0 * i + 0.011d0 * j + seed) + 0.25d0 * cos(0.05d0 * i * j)
  end function value

  subroutine open_model(m, name)
    type(nn_model), intent(inout) :: m
    character(len=*), intent(in) :: name
    character(len=512) :: msg
    integer :: ierr
    call nn_load(m, trim(dir) // "/" // name, stat=ierr, errmsg=msg)
    if (ierr /= NN_OK) error stop "native_host: cannot load " // name // ": " // trim(msg)
    print '(a)', "engine " // name // " " // nn_engine(m)
  end subroutine open_model

  subroutine check(ierr, msg, name)
    integer, intent(in) :: ierr
    character(len=*), intent(in) :: msg, name
    if (ierr /= NN_OK) error stop "native_host: forward of " // name // " failed: " // trim(msg)
  end subroutine check

  integer function open_out(name, n) result(u)
    character(len=*), intent(in) :: name
    integer, intent(in) :: n
    character(len=16) :: tag
    write (tag, '(i0)') n
    open (newunit=u, file=trim(out) // "/" // name // "_" // trim(tag) // ".bin", access="stream", &
          form="unformatted", status="replace")
  end function open_out

  subroutine run_mlp32(m, n)
    type(nn_model), intent(in) :: m
    integer, intent(in) :: n
    real(real32), allocatable :: x(:, :), y(:, :)
    character(len=512) :: msg
    integer :: ierr, i, j, u
    allocate (x(30, n), y(31, n))
    do j = 1, n
      do i = 1, 30
        x(i, j) = real(value(i, j, 1), real32)
      end do
    end do
    y = -99
    call nn_forward(m, x, y, stat=ierr, errmsg=msg)
    call check(ierr, msg, "mlp32.nnp")
    u = open_out("mlp32", n)
    write (u) x, y
    close (u)
  end subroutine run_mlp32

  subroutine run_mlp64(m, n)
    type(nn_model), intent(in) :: m
    integer, intent(in) :: n
    real(real64), allocatable :: x(:, :), y(:, :)
    character(len=512) :: msg
    integer :: ierr, i, j, u
    allocate (x(16, n), y(4, n))
    do j = 1, n
      do i = 1, 16
        x(i, j) = value(i, j, 2)
      end do
    end do
    y = -99
    call nn_forward(m, x, y, stat=ierr, errmsg=msg)
    call check(ierr, msg, "mlp64.nnp")
    u = open_out("mlp64", n)
    write (u) x, y
    close (u)
  end subroutine run_mlp64

  subroutine run_periodic(m, n)
    type(nn_model), intent(in) :: m
    integer, intent(in) :: n
    real(real64), allocatable :: x(:, :), y(:, :)
    character(len=512) :: msg
    integer :: ierr, i, j, u
    allocate (x(16, n), y(16, n))
    do j = 1, n
      do i = 1, 16
        x(i, j) = value(i, j, 3)
      end do
    end do
    y = -99
    call nn_forward(m, x, y, stat=ierr, errmsg=msg)
    call check(ierr, msg, "periodic64.nnp")
    u = open_out("periodic64", n)
    write (u) x, y
    close (u)
  end subroutine run_periodic

end program native_host
