!> bench_driver: the part the Fortran drivers of the coupling benchmark
!> (bench_fortran, bench_embedded) share: their arguments, the input and
!> output arrays of the current batch size, and the command loop.
!>
!> Usage of a driver: DRIVER ROUTE MODEL DTYPE NIN NOUT THREADS DEVICE DUMPDIR,
!> then one command per line on stdin, each answered by one JSON line:
!>   time BATCH WARMUP CALLS    per-call times in ns
!>   dump BATCH 0 0             write the output for the fixed input to DUMPDIR/ROUTE-BATCH.bin
!>   alloc BATCH WARMUP CALLS   heap allocations over CALLS calls and heap growth
!>   quit
!> Arrays are x(nin, batch) and y(nout, batch): the torch tensors (batch, nin)
!> and (batch, nout). The fixed input is x = (mod(37 k, 101) - 50) / 64 over
!> the flat (column-major) index k, exact in real32 and real64.
module bench_driver
  use, intrinsic :: iso_c_binding, only: c_int, c_int64_t
  use, intrinsic :: iso_fortran_env, only: error_unit, int64, output_unit, real32, real64
  implicit none
  private

  public :: read_arguments, serve, fail

  character(len=:), allocatable, public :: route, model_path, dtype, device, dumpdir
  integer, public :: threads = 1
  integer(int64), public :: nin = 0, nout = 0, batch = -1
  logical, public :: double = .false.
  real(real32), allocatable, target, public :: x4(:, :), y4(:, :)
  real(real64), allocatable, target, public :: x8(:, :), y8(:, :)

  !> One forward call over the current arrays; ierr = 0 on success.
  abstract interface
  subroutine forward_call(ierr, errmsg)
    integer, intent(out) :: ierr
    character(len=*), intent(inout) :: errmsg
  end subroutine forward_call
end interface
public :: forward_call

interface
  integer(c_int64_t) function bench_now_ns() bind(c, name="bench_now_ns")
    import :: c_int64_t
  end function bench_now_ns

  integer(c_int) function bench_alloc_counts(calls, bytes) bind(c, name="bench_alloc_counts")
    import :: c_int, c_int64_t
    integer(c_int64_t), intent(out) :: calls, bytes
  end function bench_alloc_counts

  integer(c_int64_t) function bench_heap_in_use() bind(c, name="bench_heap_in_use")
    import :: c_int64_t
  end function bench_heap_in_use
end interface

contains

!> Read the eight command-line arguments into the module's settings.
subroutine read_arguments()
  character(len=32) :: num
  if (command_argument_count() /= 8) then
    call fail("usage: DRIVER ROUTE MODEL float32|float64 NIN NOUT THREADS DEVICE DUMPDIR")
  end if
  route = argument(1)
  model_path = argument(2)
  dtype = argument(3)
  num = argument(4)
  read (num, *) nin
  num = argument(5)
  read (num, *) nout
  num = argument(6)
  read (num, *) threads
  device = argument(7)
  dumpdir = argument(8)
  double = dtype == "float64"
end subroutine read_arguments

!> Command-line argument i, without trailing blanks.
function argument(i) result(s)
  integer, intent(in) :: i
  character(len=:), allocatable :: s
  integer :: n
  call get_command_argument(i, length=n)
  allocate (character(len=n) :: s)
  call get_command_argument(i, s)
end function argument

!> Print a message on stderr and stop with a non-zero exit code.
subroutine fail(message)
  character(len=*), intent(in) :: message
  write (error_unit, '(a)') route_name() // ": " // message
  error stop 1
end subroutine fail

function route_name() result(s)
  character(len=:), allocatable :: s
  s = "bench driver"
  if (allocated(route)) s = "bench driver " // route
end function route_name

!> Answer commands on stdin until "quit" or end of input.
subroutine serve(forward)
  procedure(forward_call) :: forward
  character(len=16) :: op
  integer(int64) :: b, warmup, calls
  integer :: ios
  write (output_unit, '(a,i0,a)') '{"ready":1,"route":"' // route // '","threads":', threads, '}'
  flush (output_unit)
  do
    read (*, *, iostat=ios) op, b, warmup, calls
    if (ios /= 0) exit
    if (op == "quit") exit
    if (b < 1) call fail("bad command: the batch size must be >= 1")
    call prepare(b)
    select case (op)
    case ("time")
      call time_calls(forward, warmup, calls)
    case ("dump")
      call dump(forward)
    case ("alloc")
      call count_allocations(forward, warmup, calls)
    case default
      call fail("unknown command '" // trim(op) // "'")
    end select
    flush (output_unit)
  end do
end subroutine serve

!> Allocate the arrays of batch size b (when it changes) and fill the input.
subroutine prepare(b)
  integer(int64), intent(in) :: b
  integer(int64) :: i, j, k
  if (b == batch) return
  batch = b
  if (allocated(x4)) deallocate (x4, y4)
  if (allocated(x8)) deallocate (x8, y8)
  if (double) then
    allocate (x8(nin, b), y8(nout, b))
    y8 = 0
  else
    allocate (x4(nin, b), y4(nout, b))
    y4 = 0
  end if
  do j = 1, b
    do i = 1, nin
      k = (j - 1) * nin + (i - 1)
      if (double) then
        x8(i, j) = real(mod(37 * k, 101_int64) - 50, real64) / 64
      else
        x4(i, j) = real(real(mod(37 * k, 101_int64) - 50, real64) / 64, real32)
      end if
    end do
  end do
end subroutine prepare

!> Run one call and stop with its message if it failed.
subroutine checked(forward)
  procedure(forward_call) :: forward
  integer :: ierr
  character(len=512) :: errmsg
  errmsg = ""
  call forward(ierr, errmsg)
  if (ierr /= 0) call fail(trim(errmsg))
end subroutine checked

subroutine time_calls(forward, warmup, calls)
  procedure(forward_call) :: forward
  integer(int64), intent(in) :: warmup, calls
  integer(int64) :: i, t0, t(calls)
  integer :: ierr
  character(len=512) :: errmsg
  do i = 1, warmup
    call checked(forward)
  end do
  ierr = 0
  do i = 1, calls
    t0 = bench_now_ns()
    call forward(ierr, errmsg)
    t(i) = bench_now_ns() - t0
    if (ierr /= 0) call fail(trim(errmsg))
  end do
  write (output_unit, '(a,i0,a)', advance="no") '{"batch":', batch, ',"t":['
  do i = 1, calls
    write (output_unit, '(i0)', advance="no") t(i)
    if (i < calls) write (output_unit, '(a)', advance="no") ","
  end do
  write (output_unit, '(a)') "]}"
end subroutine time_calls

subroutine count_allocations(forward, warmup, calls)
  procedure(forward_call) :: forward
  integer(int64), intent(in) :: warmup, calls
  integer(int64) :: i, h0, h1
  integer(c_int64_t) :: n0, b0, n1, b1
  integer(c_int) :: counted
  do i = 1, warmup
    call checked(forward)
  end do
  h0 = bench_heap_in_use()
  counted = bench_alloc_counts(n0, b0)
  do i = 1, calls
    call checked(forward)
  end do
  counted = bench_alloc_counts(n1, b1)
  h1 = bench_heap_in_use()
  if (counted /= 0) then
      n1 = -1; n0 = 0; b1 = -1; b0 = 0
  end if
  write (output_unit, '(4(a,i0),a,i0,a)') '{"batch":', batch, ',"calls":', calls, ',"allocs":', n1 - n0, &
      ',"bytes":', b1 - b0, ',"heap_growth":', h1 - h0, '}'
end subroutine count_allocations

subroutine dump(forward)
  procedure(forward_call) :: forward
  character(len=:), allocatable :: path
  character(len=24) :: num
  integer :: u, ios
  call checked(forward)
  write (num, '(i0)') batch
  path = dumpdir // "/" // route // "-" // trim(num) // ".bin"
  open (newunit=u, file=path, access="stream", form="unformatted", status="replace", iostat=ios)
  if (ios /= 0) call fail("cannot write " // path)
  if (double) then
    write (u) y8
  else
    write (u) y4
  end if
  close (u)
  write (output_unit, '(a)') '{"dump":"' // path // '"}'
end subroutine dump

end module bench_driver
