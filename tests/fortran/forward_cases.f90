!> Runs the fixture models through nn_closure and writes inputs and outputs as
!> raw stream files, for tests/python/test_fortran_api.py to compare bit for
!> bit with torch. Usage: forward_cases MODEL_DIR OUT_DIR
program forward_cases
  use, intrinsic :: iso_fortran_env, only: real32, real64
  use nn_closure
  implicit none
  character(len=512) :: mdir, odir
  type(nn_model) :: m
  integer :: ierr, i, j, k
  character(len=512) :: msg
  real(real64) :: x2(3, 5), y2(2, 5), x1(7), y1(7), x3(3, 4, 6), y3(2, 4, 6)
  real(real32) :: s2(3, 5), t2(2, 5)
  real(real64) :: u(3, 4), t(2, 4), flux(3, 4), s(1, 4)
  real(real64), target :: big(6, 10), ybig(4, 12), ysec_ref(2, 5)

  call get_command_argument(1, mdir)
  call get_command_argument(2, odir)

  do j = 1, 5
    do i = 1, 3
      x2(i, j) = sin(0.37d0 * i + 1.3d0 * j)
    end do
  end do

  ! rank 2, real64: Fortran (3, 5) is torch (5, 3)
  call nn_load(m, trim(mdir) // "/affine64.pt", stat=ierr, errmsg=msg)
  call check("load affine64")
  call nn_forward(m, x2, y2, stat=ierr, errmsg=msg)
  call check("forward rank2 real64")
  call dump("rank2_64_x", x2); call dump("rank2_64_y", y2)

  ! non-contiguous sections in and out: same numbers as the contiguous call
  big = -1d0
  big(1:6:2, 2:10:2) = x2
  ybig = 7d0
  call nn_forward(m, big(1:6:2, 2:10:2), ybig(2:4:2, 3:11:2), stat=ierr, errmsg=msg)
  call check("forward sections")
  ysec_ref = ybig(2:4:2, 3:11:2)
  if (any(ysec_ref /= y2)) error stop "section result differs from contiguous result"
  if (any(ybig(1, :) /= 7d0) .or. any(ybig(3, :) /= 7d0)) error stop "section write touched other elements"
  ! reversed columns (negative stride) in and out: column j of the result
  ! lands where column j came from, so the same numbers appear
  ybig = 7d0
  call nn_forward(m, big(1:6:2, 10:2:-2), ybig(2:4:2, 11:3:-2), stat=ierr, errmsg=msg)
  call check("forward reversed sections")
  if (any(ybig(2:4:2, 3:11:2) /= y2)) error stop "reversed section result differs"
  call nn_free(m)

  ! rank 2, real32
  s2 = real(x2, real32)
  call nn_load(m, trim(mdir) // "/affine32.pt", stat=ierr, errmsg=msg)
  call check("load affine32")
  call nn_forward(m, s2, t2, stat=ierr, errmsg=msg)
  call check("forward rank2 real32")
  call dump32("rank2_32_x", s2); call dump32("rank2_32_y", t2)
  call nn_free(m)

  ! rank 1: one scalar per sample
  do i = 1, 7
    x1(i) = 0.25d0 * i - 1d0
  end do
  call nn_load(m, trim(mdir) // "/pointwise64.pt", stat=ierr, errmsg=msg)
  call check("load pointwise64")
  call nn_forward(m, x1, y1, stat=ierr, errmsg=msg)
  call check("forward rank1")
  call dump("rank1_x", x1); call dump("rank1_y", y1)
  call nn_free(m)

  ! rank 3: Fortran (3, 4, 6) is torch (6, 4, 3)
  do k = 1, 6
    do j = 1, 4
      do i = 1, 3
        x3(i, j, k) = cos(0.11d0 * i + 0.7d0 * j - 0.3d0 * k)
      end do
    end do
  end do
  call nn_load(m, trim(mdir) // "/affine_rank3.pt", stat=ierr, errmsg=msg)
  call check("load affine_rank3")
  call nn_forward(m, x3, y3, stat=ierr, errmsg=msg)
  call check("forward rank3")
  call dump("rank3_x", x3); call dump("rank3_y", y3)
  call nn_free(m)

  ! two inputs, two outputs
  u = x2(:, 1:4)
  t = 0.5d0 * x2(1:2, 2:5)
  call nn_load(m, trim(mdir) // "/two_in_two_out.pt", stat=ierr, errmsg=msg)
  call check("load two_in_two_out")
  call nn_forward(m, [nn_array(u), nn_array(t)], [nn_array(flux), nn_array(s)], stat=ierr, errmsg=msg)
  call check("forward two in two out")
  call dump("multi_u", u); call dump("multi_t", t); call dump("multi_flux", flux); call dump("multi_s", s)
  call nn_free(m)

  ! for the layout test, checked by hand in Python: plain affine y = W x + b,
  ! x(i, j) = i + 3 (j - 1), so every element of y differs from every other
  call nn_load(m, trim(mdir) // "/plain_affine64.pt", stat=ierr, errmsg=msg)
  call check("load plain_affine64")
  x2 = reshape([(real(i, real64), i = 1, 15)], [3, 5])
  y2 = -1d0
  call nn_forward(m, x2, y2, stat=ierr, errmsg=msg)
  call check("forward plain affine")
  call dump("plain_x", x2); call dump("plain_y", y2)
  call nn_free(m)
  call nn_free(m)   ! double free is fine
  if (nn_loaded(m)) error stop "model still loaded after nn_free"
  print '(a)', "forward_cases: all cases ran"

contains

  subroutine check(what)
    character(len=*), intent(in) :: what
    if (ierr /= NN_OK) then
      print '(a, i0, 2a)', what // ": status ", ierr, " ", trim(msg)
      error stop 3
    end if
  end subroutine check

  subroutine dump(name, a)
    character(len=*), intent(in) :: name
    real(real64), intent(in) :: a(..)
    integer :: unit
    open (newunit=unit, file=trim(odir) // "/" // name // ".bin", access="stream", form="unformatted", &
        status="replace")
    select rank (a)
    rank (1)
      write (unit) a
    rank (2)
      write (unit) a
    rank (3)
      write (unit) a
    rank default
      error stop "dump: ranks 1 to 3 only"
    end select
    close (unit)
  end subroutine dump

  subroutine dump32(name, a)
    character(len=*), intent(in) :: name
    real(real32), intent(in) :: a(:, :)
    integer :: unit
    open (newunit=unit, file=trim(odir) // "/" // name // ".bin", access="stream", form="unformatted", &
        status="replace")
    write (unit) a
    close (unit)
  end subroutine dump32
end program forward_cases
