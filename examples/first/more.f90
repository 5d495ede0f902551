! More of nn_closure: a guardrail with the host's own result as fallback, per-column flags,
! statistics, and recording the calls (with host arrays) for pyclosure replay.
program first_more
  use, intrinsic :: iso_fortran_env, only: real64
  use, intrinsic :: ieee_arithmetic, only: ieee_value, ieee_quiet_nan
  use nn_closure
  implicit none
  integer, parameter :: nlev = 4, ncol = 3
  real(real64), target :: q(nlev, ncol), flux(nlev + 1, ncol), flux_classic(nlev + 1, ncol)
  integer, target :: flags(ncol)
  type(nn_model) :: closure
  type(nn_stats) :: st
  character(len=512) :: path, records

  call get_command_argument(1, path)
  call get_command_argument(2, records)
  q = 0.5_real64
  q(2, 2) = ieee_value(q(2, 2), ieee_quiet_nan)  ! a bad value in column 2
  flux_classic = -1                              ! what the host's classical scheme gives

  ! Without stat=, an error prints its message and stops the program.
  call nn_load(closure, trim(path), nonfinite="fallback")
  call nn_record_start(closure, trim(records), every=1)
  call nn_forward(closure, q, flux, fallback=flux_classic, flags=flags)
  call nn_record_array(closure, "state_before", q)  ! joins the record of that call
  call nn_get_stats(closure, st)

  print '(a, 3i2)', "flags", flags               ! 0 3 0: column 2, NaN in and out, got the fallback
  print '(a, 5f8.3)', "column2", flux(:, 2)
  print '(a, i0)', "fallback_columns ", st%fallback_columns
  print '(a)', nn_stats_summary(closure)
  call nn_free(closure)                          ! also stops the recording
end program first_more
