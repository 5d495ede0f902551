!> Guardrails from Fortran on a batch of Burgers columns: planted NaN and
!> out-of-distribution columns get the host's classical (Smagorinsky) flux,
!> the others the network's. Usage: guard_columns MODEL DIR N NCOL
!> Reads DIR/x.bin and DIR/fallback.bin (float64, (N, NCOL)); writes
!> DIR/y_<policy>.bin, DIR/flags_<policy>.bin and prints stats lines.
program guard_columns
  use, intrinsic :: iso_fortran_env, only: real64, int32
  use nn_closure
  implicit none
  character(len=512) :: path, dir, arg, msg
  integer :: n, ncol, ierr
  real(real64), allocatable, target :: x(:, :), fb(:, :), y(:, :), score(:)
  integer(int32), allocatable :: flags(:)

  call get_command_argument(1, path)
  call get_command_argument(2, dir)
  call get_command_argument(3, arg)
  read (arg, *) n
  call get_command_argument(4, arg)
  read (arg, *) ncol
  allocate (x(n, ncol), fb(n, ncol), y(n, ncol), score(ncol), flags(ncol))
  call read_raw(trim(dir) // "/x.bin", x)
  call read_raw(trim(dir) // "/fallback.bin", fb)

  call run("fallback", "fallback")
  call run("fallback", "flag")

  ! the default policy: the NaN column is an error that names it
  block
    type(nn_model) :: plain
    call nn_load(plain, trim(path))
    call nn_forward(plain, [nn_array(x)], [nn_array(y), nn_array(score)], stat=ierr, errmsg=msg)
    print '(a, i0, a, a)', "error|", ierr, "|", trim(msg)
    call nn_free(plain)
  end block

contains

  subroutine run(nonfinite, ood)
    character(len=*), intent(in) :: nonfinite, ood
    type(nn_model) :: m
    type(nn_stats) :: s
    call nn_load(m, trim(path), nonfinite=nonfinite, ood=ood)
    y = -1
    call nn_forward(m, [nn_array(x)], [nn_array(y), nn_array(score)], fallback=[nn_array(fb)], flags=flags)
    call write_raw(trim(dir) // "/y_" // ood // ".bin", y)
    open (newunit=ierr, file=trim(dir) // "/flags_" // ood // ".bin", access="stream", status="replace")
    write (ierr) flags
    close (ierr)
    call nn_get_stats(m, s)
    print '(a, a, 6("|", i0))', "stats|", ood, s%calls, s%columns, s%fallback_columns, &
        s%nonfinite_input_columns, s%nonfinite_output_columns, s%ood_columns
    print '(a)', "summary|" // nn_stats_summary(m)
    call nn_free(m)
  end subroutine run

  subroutine read_raw(file, a)
    character(len=*), intent(in) :: file
    real(real64), intent(out) :: a(:, :)
    integer :: u
    open (newunit=u, file=file, access="stream", status="old", action="read")
    read (u) a
    close (u)
  end subroutine read_raw

  subroutine write_raw(file, a)
    character(len=*), intent(in) :: file
    real(real64), intent(in) :: a(:, :)
    integer :: u
    open (newunit=u, file=file, access="stream", status="replace")
    write (u) a
    close (u)
  end subroutine write_raw

end program guard_columns
