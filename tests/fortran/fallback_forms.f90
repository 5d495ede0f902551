!> The fallback forms of nn_forward under nonfinite=fallback, with a NaN planted
!> in one column: the single-array form nn_forward(m, x, y, fallback=fb), and
!> the general form with one fallback array and with two (one per output).
!> Writes inputs, outputs and flags as raw streams for
!> tests/python/test_fortran_api.py to check against known values (built with
!> case_support.f90).
!> Usage: fallback_forms MODEL_DIR OUT_DIR
program fallback_forms
  use, intrinsic :: iso_fortran_env, only: real64, int32
  use, intrinsic :: ieee_arithmetic, only: ieee_value, ieee_quiet_nan
  use nn_closure
  use case_support, only: check, dump, dump_dir
  implicit none
  character(len=512) :: mdir, odir, msg
  type(nn_model) :: m
  integer :: ierr, i, j
  real(real64) :: x(3, 5), y(2, 5), fb(2, 5)
  real(real64) :: u(3, 4), t(2, 4), flux(3, 4), s(1, 4), fb_flux(3, 4), fb_s(1, 4)
  integer(int32) :: flags5(5), flags4(4)

  call get_command_argument(1, mdir)
  call get_command_argument(2, odir)
  dump_dir = odir

  ! single-array form on plain_affine64 (y = W x + b): NaN in column 3 of x
  do j = 1, 5
    do i = 1, 3
      x(i, j) = 0.25d0 * (i + 3 * (j - 1)) - 1d0
    end do
  end do
  x(2, 3) = ieee_value(1d0, ieee_quiet_nan)
  fb = reshape([(100d0 + i, i = 1, 10)], [2, 5])
  y = -1d0
  flags5 = -1
  call nn_load(m, trim(mdir) // "/plain_affine64.pt", nonfinite="fallback", stat=ierr, errmsg=msg)
  call check("load plain_affine64", ierr, msg)
  call nn_forward(m, x, y, stat=ierr, errmsg=msg, fallback=fb, flags=flags5)
  call check("single-array form", ierr, msg)
  call nn_free(m)
  call dump("single_x", x); call dump("single_y", y); call dump("single_fb", fb)
  call dump("single_flags", flags5)

  ! general form on two_in_two_out ((u, t) -> (flux, s)): NaN in column 2 of u
  do j = 1, 4
    u(:, j) = [0.5d0, -0.25d0, 0.75d0] * j
    t(:, j) = [0.125d0, 0.5d0] * (5 - j)
  end do
  u(3, 2) = ieee_value(1d0, ieee_quiet_nan)
  fb_flux = reshape([(200d0 + i, i = 1, 12)], [3, 4])
  fb_s = reshape([(300d0 + i, i = 1, 4)], [1, 4])
  call nn_load(m, trim(mdir) // "/two_in_two_out.pt", nonfinite="fallback", stat=ierr, errmsg=msg)
  call check("load two_in_two_out", ierr, msg)
  call general("two", [nn_array(fb_flux), nn_array(fb_s)])
  call general("one", [nn_array(fb_flux)])
  call nn_free(m)
  call dump("multi_u", u); call dump("multi_t", t)
  call dump("multi_fb_flux", fb_flux); call dump("multi_fb_s", fb_s)
  print '(a)', "fallback_forms: all forms ran"

contains

  !> The general form with the given fallback arrays; outputs as <tag>_flux, <tag>_s.
  subroutine general(tag, fallback)
    character(len=*), intent(in) :: tag
    type(nn_array), intent(in) :: fallback(:)
    flux = -1d0
    s = -1d0
    flags4 = -1
    call nn_forward(m, [nn_array(u), nn_array(t)], [nn_array(flux), nn_array(s)], stat=ierr, errmsg=msg, &
        fallback=fallback, flags=flags4)
    call check("general form, fallback arrays: " // tag, ierr, msg)
    call dump(tag // "_flux", flux); call dump(tag // "_s", s)
    call dump(tag // "_flags", flags4)
  end subroutine general
end program fallback_forms
