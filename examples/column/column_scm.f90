!> Single-column model of radiative-convective equilibrium, columns in blocks
!> of nproma, with longwave radiation from the scheme or from its emulator.
!>
!> Usage: column_scm [namelist file, default column.nml]
!>
!> Each step, for each block of nproma columns: net downward longwave fluxes
!> at the nlev+1 interfaces (radiation = "scheme": `lw_fluxes`; "nn": the
!> emulator through `nn_closure`, with ood = "fallback" the scheme's fluxes
!> for the columns it flags), the surface sensible heat flux added at the
!> bottom interface, the flux-form temperature update, convective adjustment
!> and humidity at fixed relative humidity. Surface temperatures are fixed,
!> spread evenly over [ts_min, ts_max].
!>
!> Output file (`output`), little-endian stream, readable with numpy:
!>   header, 48 bytes: int64 [version=1, nlev, ncol, nsteps, every, nband]
!>   then one record per snapshot (step 0, every, 2*every, ...):
!>                     float64 [time, ts(ncol), t(nlev, ncol)]
!> Standard output ends with "column_scm: stats ..." key=value pairs: the
!> emulator's calls and columns, columns flagged out of distribution, columns
!> that got the scheme's fluxes, and how many of those equal them bit for bit.
!>
!> With bench_rounds > 0 the program instead times the scheme and the
!> emulator per block of each nproma in bench_nproma (interleaved rounds of
!> bench_passes passes over the ncol columns each, the median per block) and
!> prints "column_scm: bench nproma=... scheme_s=... nn_s=..." lines.
program column_scm
  use, intrinsic :: iso_fortran_env, only: int32, int64, output_unit
  use, intrinsic :: ieee_arithmetic, only: ieee_is_finite
  use column_rad, only: dp, lw_fluxes
  use column_core, only: grid, layer_heat_capacity, humidity, initial_state, total_flux, &
      flux_update, convect
  use column_nn, only: column_nn_load, column_nn_free, column_nn_record, column_nn_record_update, &
      nn_fluxes, column_nn_stats, column_nn_summary, column_nn_guarded
  use nn_closure, only: nn_stats, nn_set_num_threads
  implicit none

  integer :: nlev = 30, ncol = 32, nproma = 8, nband = 16, nsteps = 2000, every = 100, threads = 1
  real(dp) :: dt = 21600.0_dp, chs = 10.0_dp, rh0 = 0.8_dp, ts_min = 285.0_dp, ts_max = 305.0_dp
  character(len=16) :: radiation = "scheme", ood = "off"
  character(len=512) :: model = "column.nnp", output = "column_out.bin", record_dir = ""
  integer :: record_every = 1, bench_rounds = 0, bench_passes = 8, bench_nproma(8) = 0
  namelist /column/ nlev, ncol, nproma, nband, nsteps, every, threads, dt, chs, rh0, ts_min, ts_max, &
      radiation, ood, model, output, record_dir, record_every, bench_rounds, bench_passes, bench_nproma

  real(dp), allocatable :: p_int(:), dx(:), t(:, :), q(:, :), ts(:)
  real(dp), allocatable :: rad(:, :), fb(:, :), other(:, :), flux(:, :), before(:, :)
  integer(int32), allocatable :: flags(:)
  character(len=512) :: nmlfile, msg
  integer :: unit, ios, ierr, s, j
  integer(int64) :: fell_back = 0, fell_back_exact = 0
  logical :: use_nn, recording

  nmlfile = "column.nml"
  if (command_argument_count() >= 1) call get_command_argument(1, nmlfile)
  open (newunit=unit, file=trim(nmlfile), status="old", action="read", iostat=ios, iomsg=msg)
  if (ios /= 0) call fail("cannot open namelist: "//trim(msg))
  read (unit, nml=column, iostat=ios, iomsg=msg)
  if (ios /= 0) call fail("bad namelist &column: "//trim(msg))
  close (unit)
  if (nlev < 2 .or. ncol < 1 .or. nproma < 1 .or. nband < 1 .or. every < 1) then
    call fail("nlev >= 2, ncol, nproma, nband and every >= 1 are needed")
  end if
  if (trim(radiation) /= "scheme" .and. trim(radiation) /= "nn") then
    call fail("radiation must be 'scheme' or 'nn', got '"//trim(radiation)//"'")
  end if

  allocate(p_int(nlev + 1), dx(nlev), t(nlev, ncol), q(nlev, ncol), ts(ncol))
  allocate(rad(nlev + 1, nproma), fb(nlev + 1, nproma), other(nlev + 1, nproma))
  allocate(flux(nlev + 1, nproma), before(nlev, nproma), flags(nproma))
  call grid(nlev, p_int)
  call layer_heat_capacity(nlev, p_int, dx)
  do j = 1, ncol
    ts(j) = ts_min + (ts_max - ts_min) * (j - 1) / max(ncol - 1, 1)
  end do
  call initial_state(nlev, ncol, p_int, ts, t)
  call humidity(nlev, ncol, p_int, rh0, t, q)

  use_nn = trim(radiation) == "nn"
  recording = .false.
  call nn_set_num_threads(threads)
  if (use_nn) then
    call column_nn_load(trim(model), trim(ood), ierr, msg)
    if (ierr /= 0) call fail("cannot load emulator "//trim(model)//": "//trim(msg))
    if (len_trim(record_dir) > 0) then
      call column_nn_record(trim(record_dir), record_every, ierr, msg)
      if (ierr /= 0) call fail("cannot record into "//trim(record_dir)//": "//trim(msg))
      recording = .true.
    end if
  end if

  if (bench_rounds > 0) then
    call bench()
  else
    call run()
  end if
  if (use_nn) then
    write (output_unit, '(a)') "column_scm: "//column_nn_summary()
    call stats_line()
    call column_nn_free()
  end if
  write (output_unit, '(a)') "column_scm: done"

contains

  !> The model run: nsteps steps, snapshots every `every` steps.
  subroutine run()
    open (newunit=unit, file=trim(output), access="stream", form="unformatted", &
        status="replace", action="write", iostat=ios, iomsg=msg)
    if (ios /= 0) call fail("cannot open output: "//trim(msg))
    write (unit) [1_int64, int([nlev, ncol, nsteps, every, nband], int64)]
    write (unit) 0.0_dp, ts, t
    do s = 1, nsteps
      do j = 1, ncol, nproma
        call step_block(j, min(j + nproma - 1, ncol))
      end do
      if (.not. all(ieee_is_finite(t))) call fail("state is not finite")
      if (mod(s, every) == 0) then
        write (unit) s * dt, ts, t
        flush (unit)
      end if
    end do
    close (unit)
  end subroutine run

  !> One step of columns jb..je.
  subroutine step_block(jb, je)
    integer, intent(in) :: jb, je
    integer :: n, k
    n = je - jb + 1
    if (.not. use_nn) then
      call lw_fluxes(nlev, n, nband, p_int, t(:, jb:je), q(:, jb:je), ts(jb:je), rad(:, :n))
    else if (trim(ood) == "fallback") then
      call lw_fluxes(nlev, n, nband, p_int, t(:, jb:je), q(:, jb:je), ts(jb:je), fb(:, :n))
      flags(:n) = 0
      call nn_fluxes(nlev, n, t(:, jb:je), q(:, jb:je), ts(jb:je), rad(:, :n), fb(:, :n), flags(:n))
      do k = 1, n
        if (flags(k) /= 0) then
          fell_back = fell_back + 1
          if (all(transfer(rad(:, k), 1_int64, nlev + 1) == transfer(fb(:, k), 1_int64, nlev + 1))) then
            fell_back_exact = fell_back_exact + 1
          end if
        end if
      end do
    else if (column_nn_guarded()) then
      call nn_fluxes(nlev, n, t(:, jb:je), q(:, jb:je), ts(jb:je), rad(:, :n), flags=flags(:n))
    else
      call nn_fluxes(nlev, n, t(:, jb:je), q(:, jb:je), ts(jb:je), rad(:, :n))
    end if
    call total_flux(nlev, n, chs, t(:, jb:je), ts(jb:je), rad(:, :n), other(:, :n), flux(:, :n))
    before(:, :n) = t(:, jb:je)
    call flux_update(nlev, n, dt, dx, flux(:, :n), t(:, jb:je))
    if (recording) call column_nn_record_update(before(:, :n), t(:, jb:je), flux(:, :n), other(:, :n), &
        rad(:, :n), dt, dx)
    call convect(nlev, n, p_int, t(:, jb:je))
    call humidity(nlev, n, p_int, rh0, t(:, jb:je), q(:, jb:je))
  end subroutine step_block

  !> Median seconds per block of the scheme and of the emulator at each nproma.
  subroutine bench()
    integer :: i, r, np, nb
    real(dp), allocatable :: ts_scheme(:, :), ts_nn(:, :)
    real(dp), allocatable :: f(:, :)
    allocate(f(nlev + 1, ncol), ts_scheme(bench_rounds, 8), ts_nn(bench_rounds, 8))
    do r = 1, bench_rounds
      do i = 1, count(bench_nproma > 0)
        np = bench_nproma(i)
        nb = (ncol + np - 1) / np
        if (mod(r + i, 2) == 0) then
          ts_scheme(r, i) = time_blocks(.false., np, f) / nb
          ts_nn(r, i) = time_blocks(.true., np, f) / nb
        else
          ts_nn(r, i) = time_blocks(.true., np, f) / nb
          ts_scheme(r, i) = time_blocks(.false., np, f) / nb
        end if
      end do
    end do
    do i = 1, count(bench_nproma > 0)
      write (output_unit, '(a,i0,a,es12.5,a,es12.5)') "column_scm: bench nproma=", bench_nproma(i), &
          " scheme_s=", median(ts_scheme(:, i)), " nn_s=", median(ts_nn(:, i))
    end do
  end subroutine bench

  !> Seconds per pass to compute the fluxes of all ncol columns in blocks of
  !> np (the mean of bench_passes passes).
  real(dp) function time_blocks(emulator, np, f)
    logical, intent(in) :: emulator
    integer, intent(in) :: np
    real(dp), intent(out) :: f(:, :)
    integer(int64) :: c0, c1, rate
    integer :: jb, je, pass
    call system_clock(c0, rate)
    do pass = 1, max(bench_passes, 1)
      do jb = 1, ncol, np
        je = min(jb + np - 1, ncol)
        if (emulator) then
          call nn_fluxes(nlev, je - jb + 1, t(:, jb:je), q(:, jb:je), ts(jb:je), f(:, jb:je))
        else
          call lw_fluxes(nlev, je - jb + 1, nband, p_int, t(:, jb:je), q(:, jb:je), ts(jb:je), f(:, jb:je))
        end if
      end do
    end do
    call system_clock(c1)
    time_blocks = real(c1 - c0, dp) / real(rate, dp) / max(bench_passes, 1)
  end function time_blocks

  !> Median of a short array (insertion sort of a copy).
  real(dp) function median(a)
    real(dp), intent(in) :: a(:)
    real(dp) :: b(size(a)), v
    integer :: i, k
    b = a
    do i = 2, size(b)
      v = b(i)
      k = i - 1
      do while (k >= 1)
        if (b(k) <= v) exit
        b(k + 1) = b(k)
        k = k - 1
      end do
      b(k + 1) = v
    end do
    median = 0.5_dp * (b((size(b) + 1) / 2) + b(size(b) / 2 + 1))
  end function median

  !> The emulator's statistics as key=value pairs.
  subroutine stats_line()
    type(nn_stats) :: st
    call column_nn_stats(st)
    write (output_unit, '(7(a,i0))') "column_scm: stats calls=", st%calls, " columns=", st%columns, &
        " ood_columns=", st%ood_columns, " fallback_columns=", st%fallback_columns, &
        " nonfinite_columns=", st%nonfinite_input_columns + st%nonfinite_output_columns, &
        " host_fallbacks=", fell_back, " host_fallbacks_exact=", fell_back_exact
  end subroutine stats_line

  !> Stop with a message (on stderr) and a non-zero status.
  subroutine fail(text)
    character(len=*), intent(in) :: text
    error stop "column_scm: "//text
  end subroutine fail

end program column_scm
