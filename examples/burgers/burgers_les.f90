!> Standalone forced-Burgers run (DNS or LES, any closure) driven by a namelist.
!>
!> Usage: burgers_les [namelist file, default burgers.nml]
!>
!> Output file (`output`), little-endian stream, readable with numpy:
!>   header, 64 bytes: int64 [version=1, n, every, nsteps],
!>                     float64 [length, nu, dt, cs]
!>   then one record per snapshot (step 0, every, 2*every, ...):
!>                     float64 [time, u(1), ..., u(n)]
!>   numpy: h = np.fromfile(f, '<i8', 4); d = np.fromfile(f, '<f8', offset=64)
!>          d = d[: d.size // (h[1] + 1) * (h[1] + 1)].reshape(-1, h[1] + 1)
!> A killed run loses at most the snapshot being written.
program burgers_les
  use, intrinsic :: iso_fortran_env, only: int64, output_unit
  use, intrinsic :: ieee_arithmetic, only: ieee_is_finite
  use burgers_core, only: dp, init, set_closure, set_state, step, u, time, &
      momentum, energy, mom_forcing
  use burgers_nn, only: burgers_nn_load, burgers_nn_free, burgers_nn_record
  implicit none

  integer :: n = 128, nsteps = 1000, every = 10, seed = 1, kmin = 1, kmax = 3
  real(dp) :: length = 100.0_dp, nu = 0.02_dp, dt = 0.01_dp, cs = 0.2_dp
  real(dp) :: force_amp = 0.1_dp, force_tau = 1.0_dp
  character(len=32) :: closure = "none", scheme = "central", device = "cpu"
  character(len=512) :: model = "closure.pt", output = "burgers_out.bin", initial = ""
  character(len=512) :: record_dir = ""
  integer :: record_every = 1
  namelist /burgers/ n, length, nu, dt, nsteps, every, closure, scheme, cs, model, &
      device, seed, force_amp, kmin, kmax, force_tau, output, initial, record_dir, record_every

  character(len=512) :: nmlfile, msg
  integer :: unit, ios, ierr, s
  real(dp) :: m0

  nmlfile = "burgers.nml"
  if (command_argument_count() >= 1) call get_command_argument(1, nmlfile)
  open (newunit=unit, file=trim(nmlfile), status="old", action="read", iostat=ios, iomsg=msg)
  if (ios /= 0) call fail("cannot open namelist: "//trim(msg))
  read (unit, nml=burgers, iostat=ios, iomsg=msg)
  if (ios /= 0) call fail("bad namelist &burgers: "//trim(msg))
  close (unit)

  call init(n, length, nu, dt, seed, force_amp, kmin, kmax, force_tau)
  if (len_trim(initial) > 0) call read_initial()
  if (trim(closure) == "nn") then
    call burgers_nn_load(trim(model), trim(device), ierr, msg)
    if (ierr /= 0) call fail("cannot load closure "//trim(model)//": "//trim(msg))
    if (len_trim(record_dir) > 0) then
      call burgers_nn_record(trim(record_dir), record_every, ierr, msg)
      if (ierr /= 0) call fail("cannot record into "//trim(record_dir)//": "//trim(msg))
    end if
  end if
  call set_closure(trim(closure), cs, trim(scheme), ierr)
  if (ierr /= 0) call fail("unknown closure '"//trim(closure)//"' or scheme '"//trim(scheme)//"'")

  open (newunit=unit, file=trim(output), access="stream", form="unformatted", &
      status="replace", action="write", iostat=ios, iomsg=msg)
  if (ios /= 0) call fail("cannot open output: "//trim(msg))
  write (unit) [1_int64, int(n, int64), int(every, int64), int(nsteps, int64)]
  write (unit) [length, nu, dt, cs]
  m0 = momentum()
  write (unit) time, u
  do s = every, nsteps, every
    call step(every)
    write (unit) time, u
    flush (unit)
    if (.not. all(ieee_is_finite(u))) call fail("state is not finite")
  end do
  close (unit)
  if (trim(closure) == "nn") call burgers_nn_free()

  write (output_unit, '(a,es12.4,a,es12.4)') "burgers_les: energy ", energy(), &
      "  momentum drift beyond forcing ", momentum() - m0 - mom_forcing
  write (output_unit, '(a)') "burgers_les: done, wrote "//trim(output)

contains

  !> Read n float64 cell values (raw stream) as the initial state.
  subroutine read_initial()
    real(dp), allocatable :: u_init(:)
    integer :: iu
    allocate(u_init(n))
    open (newunit=iu, file=trim(initial), access="stream", form="unformatted", &
        status="old", action="read", iostat=ios, iomsg=msg)
    if (ios /= 0) call fail("cannot open initial state: "//trim(msg))
    read (iu, iostat=ios, iomsg=msg) u_init
    if (ios /= 0) call fail("cannot read initial state: "//trim(msg))
    close (iu)
    call set_state(u_init)
  end subroutine read_initial

  !> Stop with a message (on stderr) and a non-zero status.
  subroutine fail(text)
    character(len=*), intent(in) :: text
    error stop "burgers_les: "//text
  end subroutine fail

end program burgers_les
