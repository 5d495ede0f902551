!> Online learning of the Burgers closure: the LES trains its closure while it
!> runs, against a DNS companion run alongside in the same process.
!>
!> Usage: burgers_online [namelist file, default online.nml]
!>
!> Both runs use `burgers_core` (swapped in and out with `burgers_swap`), from
!> the same forcing seed, so they see the same forcing at the same times. After
!> a spin-up the run goes in windows of `window` time units:
!>   1. the DNS companion (n_dns cells) advances through the window, keeping its
!>      fine state at every LES step;
!>   2. the LES (n_les cells) restarts from the filtered DNS (block averages,
!>      the LES variable) and runs the window with the closure `model`; at each
!>      LES step it calls nn_train_step on the filtered DNS state and the fine
!>      state (the training spec coarse-grains that into the subgrid flux);
!>      its error is the RMS of u_les - filtered DNS over the window's steps,
!>      relative to the RMS of the filtered DNS;
!>   3. the same window without a closure gives the reference error;
!>   4. nn_train_sync puts the trained weights into the running closure: the
!>      next window runs them.
!> With train = .false. the closure is only run (steps 1-3), for comparison.
!>
!> Output (`output`, text): a header line, then per window
!>   window  time_end  weights_version  mean_loss  error_nn  error_none
!> the loss of every training step (`losses.bin`, float64 stream), and the
!> trainer's checkpoint (`checkpoint`, torch.load(weights_only=True)).
program burgers_online
  use, intrinsic :: iso_fortran_env, only: real64, output_unit
  use, intrinsic :: ieee_arithmetic, only: ieee_is_finite
  use burgers_core, only: dp, init, set_closure, set_state, step, u, time
  use burgers_swap, only: core_run, save_run, load_run
  use burgers_nn, only: burgers_nn_load, burgers_nn_free, burgers_nn_train, burgers_nn_learn, &
      burgers_nn_sync, burgers_nn_save
  implicit none

  integer :: n_les = 128, n_dns = 4096, seed = 1, kmin = 1, kmax = 3, windows = 40
  real(dp) :: length = 100.0_dp, nu = 0.02_dp, dt_les = 0.04_dp, dt_dns = 0.005_dp
  real(dp) :: force_amp = 0.1_dp, force_tau = 1.0_dp, spinup = 50.0_dp, window = 5.0_dp
  logical :: train = .true.
  character(len=512) :: model = "closure.pt", spec = "", options = "", versions = ""
  character(len=512) :: checkpoint = "online_ckpt.pt", output = "online.txt"
  namelist /online/ n_les, n_dns, length, nu, dt_les, dt_dns, seed, force_amp, kmin, kmax, &
      force_tau, spinup, window, windows, train, model, spec, options, versions, checkpoint, output

  type(core_run) :: dns, les, start
  real(dp), allocatable :: fine(:, :), coarse(:, :)
  real(dp) :: loss, err_nn, err_none
  character(len=1024) :: nmlfile, msg
  integer :: unit, lunit, ios, ierr, k, r, sub, wsteps, version

  nmlfile = "online.nml"
  if (command_argument_count() >= 1) call get_command_argument(1, nmlfile)
  open (newunit=unit, file=trim(nmlfile), status="old", action="read", iostat=ios, iomsg=msg)
  if (ios /= 0) call fail("cannot open namelist: "//trim(msg))
  read (unit, nml=online, iostat=ios, iomsg=msg)
  if (ios /= 0) call fail("bad namelist &online: "//trim(msg))
  close (unit)
  r = n_dns/n_les
  sub = nint(dt_les/dt_dns)
  wsteps = nint(window/dt_les)
  if (r*n_les /= n_dns .or. abs(sub*dt_dns - dt_les) > 1e-12_dp*dt_les .or. wsteps < 1) then
    call fail("n_dns must be a multiple of n_les, dt_les a multiple of dt_dns, window >= dt_les")
  end if
  allocate(fine(n_dns, 0:wsteps), coarse(n_les, 0:wsteps))

  call burgers_nn_load(trim(model), "cpu", ierr, msg)
  if (ierr /= 0) call fail("cannot load closure "//trim(model)//": "//trim(msg))
  if (train) then
    call burgers_nn_train(trim(spec), trim(options), trim(versions), ierr, msg)
    if (ierr /= 0) call fail("cannot start training: "//trim(msg))
  end if

  call init(n_dns, length, nu, dt_dns, seed, force_amp, kmin, kmax, force_tau)  ! the companion
  call closure("none")
  call step(nint(spinup/dt_dns))
  call save_run(dns)
  call init(n_les, length, nu, dt_les, seed, force_amp, kmin, kmax, force_tau)  ! the LES, same forcing
  call closure("none")
  call step(nint(spinup/dt_les))
  call save_run(les)

  open (newunit=unit, file=trim(output), status="replace", action="write", iostat=ios, iomsg=msg)
  if (ios /= 0) call fail("cannot open output: "//trim(msg))
  open (newunit=lunit, file="losses.bin", access="stream", form="unformatted", status="replace", &
      action="write", iostat=ios, iomsg=msg)
  if (ios /= 0) call fail("cannot open losses.bin: "//trim(msg))
  write (unit, '(a)') "# window time_end weights_version mean_loss error_nn error_none"
  version = 0
  do k = 1, windows
    call companion_window()
    call load_run(les)                      ! restart the LES from the filtered DNS
    call set_state(coarse(:, 0))
    call save_run(start)
    call closure("none")
    call run_window(.false., err_none, loss)
    call load_run(start)
    call closure("nn")
    call run_window(train, err_nn, loss)
    call save_run(les)
    write (unit, '(i6, f12.4, i6, 3es16.8)') k, time, version, loss, err_nn, err_none
    flush (unit)
    if (train) then
      call burgers_nn_sync(version, ierr, msg)
      if (ierr /= 0) call fail("nn_train_sync: "//trim(msg))
    end if
  end do
  close (unit)
  close (lunit)
  if (train) then
    call burgers_nn_save(trim(checkpoint), ierr, msg)
    if (ierr /= 0) call fail("cannot save the checkpoint: "//trim(msg))
  end if
  call burgers_nn_free()
  write (output_unit, '(a, i0, a, es11.4, a, es11.4)') "burgers_online: ", windows, &
      " windows; last error nn ", err_nn, ", none ", err_none
  write (output_unit, '(a)') "burgers_online: done, wrote "//trim(output)

contains

   !> Advance the DNS companion through one window; keep its fine state and
  !> block averages at every LES step (fine(:, 0) the window's start).
  subroutine companion_window()
    integer :: jj
    call load_run(dns)
    fine(:, 0) = u
    do jj = 1, wsteps
      call step(sub)
      fine(:, jj) = u
    end do
    call save_run(dns)
    coarse = sum(reshape(fine, [r, n_les, wsteps + 1]), dim=1)/real(r, dp)
  end subroutine companion_window

   !> Run the LES through the window with the closure chosen; with `learn`,
  !> one training step per LES step on the companion's state at that step.
  !> err: RMS error against the filtered DNS over the window, relative to
   !> its RMS; mean_loss: the mean loss of the steps (0 without learning).
  subroutine run_window(learn, err, mean_loss)
    logical, intent(in) :: learn
    real(dp), intent(out) :: err, mean_loss
    real(dp) :: sq, ref, l
    integer :: jj
      sq = 0; ref = 0; mean_loss = 0
    do jj = 1, wsteps
      if (learn) then
        call burgers_nn_learn(coarse(:, jj - 1), fine(:, jj - 1), l, ierr, msg)
        if (ierr /= 0) call fail("nn_train_step: "//trim(msg))
        mean_loss = mean_loss + l/wsteps
        write (lunit) l
      end if
      call step(1)
      if (.not. all(ieee_is_finite(u))) call fail("LES state is not finite")
      sq = sq + sum((u - coarse(:, jj))**2)
      ref = ref + sum(coarse(:, jj)**2)
    end do
    err = sqrt(sq/ref)
  end subroutine run_window

  !> Choose the LES closure by name (central scheme).
  subroutine closure(name)
    character(len=*), intent(in) :: name
    integer :: stat
    call set_closure(name, 0.0_dp, "central", stat)
    if (stat /= 0) call fail("cannot set closure "//name)
  end subroutine closure

  !> Stop with a message (on stderr) and a non-zero status.
  subroutine fail(text)
    character(len=*), intent(in) :: text
    error stop "burgers_online: "//text
  end subroutine fail

end program burgers_online
