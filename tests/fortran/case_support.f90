!> What the Fortran API case programs share: `call check(what, ierr, msg)` stops
!> with the status and message of a failed call, and `call dump(name, a)` writes
!> `a` raw (Fortran order, stream access) to DUMP_DIR/NAME.bin for the Python
!> tests to read back. Built before the program that uses it.
module case_support
  use, intrinsic :: iso_fortran_env, only: int32, real32, real64
  use nn_closure, only: NN_OK
  implicit none
  private
  public :: check, dump, dump_dir

  !> The folder the dumps go to (the program sets it from its arguments).
  character(len=512) :: dump_dir = "."

  !> Dump a real64 array of rank 1 to 3, a real32 one of rank 2, or int32 flags of rank 1.
  interface dump
    module procedure dump_real64, dump_real32, dump_int32
  end interface dump

contains

  !> Stop (exit code 3) printing what failed, with its status and message, unless ierr is NN_OK.
  subroutine check(what, ierr, msg)
    character(len=*), intent(in) :: what, msg
    integer, intent(in) :: ierr
    if (ierr /= NN_OK) then
      print '(a, i0, 2a)', what // ": status ", ierr, " ", trim(msg)
      error stop 3
    end if
  end subroutine check

  integer function open_dump(name) result(unit)
    character(len=*), intent(in) :: name
    open (newunit=unit, file=trim(dump_dir) // "/" // name // ".bin", access="stream", form="unformatted", &
        status="replace")
  end function open_dump

  subroutine dump_real64(name, a)
    character(len=*), intent(in) :: name
    real(real64), intent(in) :: a(..)
    integer :: unit
    unit = open_dump(name)
    select rank (a)
    rank (1)
      write (unit) a
    rank (2)
      write (unit) a
    rank (3)
      write (unit) a
    rank default
      error stop "dump: real64 arrays of rank 1 to 3 only"
    end select
    close (unit)
  end subroutine dump_real64

  subroutine dump_real32(name, a)
    character(len=*), intent(in) :: name
    real(real32), intent(in) :: a(:, :)
    integer :: unit
    unit = open_dump(name)
    write (unit) a
    close (unit)
  end subroutine dump_real32

  subroutine dump_int32(name, a)
    character(len=*), intent(in) :: name
    integer(int32), intent(in) :: a(:)
    integer :: unit
    unit = open_dump(name)
    write (unit) a
    close (unit)
  end subroutine dump_int32
end module case_support
