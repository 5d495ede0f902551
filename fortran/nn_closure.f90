!> nn_closure: call a learned closure (a TorchScript file written by
!> pyclosure.export, or any TorchScript file) from a Fortran model, in-process.
!>
!>     use nn_closure
!>     type(nn_model) :: closure
!>     call nn_load(closure, "closure.pt", device="cpu", stat=ierr, errmsg=msg)
!>     call nn_forward(closure, x, y, stat=ierr)              ! one input, one output
!>     call nn_forward(closure, [nn_array(u), nn_array(t)], [nn_array(flux)], stat=ierr)
!>     call nn_free(closure)
!>
!> Layout: a Fortran array x(nfeat, ncol) is the torch tensor (ncol, nfeat):
!> the Fortran shape reversed, with no transpose and no copy. Non-contiguous
!> sections (also reversed ones) are passed by their strides, still without a copy.
!> Every routine takes optional stat and errmsg; without stat an error prints
!> its message and stops the program (error stop), as Fortran I/O does
!> without iostat. Arrays given to nn_array must stay alive (and should have
!> the target attribute) until the nn_forward call that uses them returns.
module nn_closure
  use, intrinsic :: iso_c_binding, only: c_associated, c_char, c_f_pointer, c_int, c_int32_t, c_int64_t, &
      c_intptr_t, c_loc, c_null_char, c_null_ptr, c_ptr, c_size_t
  use, intrinsic :: iso_fortran_env, only: real32, real64
  use nn_closure_c
  implicit none
  private

  !> Status values: equal to enum nnc_status in nn_closure.h (checked by a test).
  integer, parameter, public :: NN_OK = 0
  integer, parameter, public :: NN_ERR_IO = 1
  integer, parameter, public :: NN_ERR_FORMAT = 2
  integer, parameter, public :: NN_ERR_BAD_DEVICE = 3
  integer, parameter, public :: NN_ERR_NO_DEVICE = 4
  integer, parameter, public :: NN_ERR_HANDLE = 5
  integer, parameter, public :: NN_ERR_NARGS = 6
  integer, parameter, public :: NN_ERR_RANK = 7
  integer, parameter, public :: NN_ERR_SHAPE = 8
  integer, parameter, public :: NN_ERR_DTYPE = 9
  integer, parameter, public :: NN_ERR_ARGUMENT = 10
  integer, parameter, public :: NN_ERR_RUNTIME = 11
  integer, parameter, public :: NN_ERR_NONFINITE = 12
  integer, parameter, public :: NN_ERR_RECORD = 13
  integer, parameter, public :: NN_ERR_MEMORY = 14
  integer, parameter, public :: NN_ERR_UNTRUSTED = 15
  integer, parameter, public :: NN_ERR_TRAIN = 16
  integer, parameter, public :: NN_ERR_INTERNAL = 99

  !> Element types (enum nnc_dtype).
  integer(c_int), parameter :: NNC_FLOAT32 = 1, NNC_FLOAT64 = 2, NNC_INT32 = 3

  !> A loaded model. Default-initialised to "not loaded".
  type, public :: nn_model
    type(c_ptr) :: handle = c_null_ptr
  end type nn_model

  !> An array described for nn_forward, without copying it (see nn_array()).
  type, public :: nn_array
    private
    type(c_ptr) :: data = c_null_ptr
    integer(c_int) :: dtype = 0
    integer :: rank = 0
    integer(c_int64_t) :: shape(NNC_MAX_RANK) = 0
    logical :: strided = .false.
    integer(c_int64_t) :: strides(NNC_MAX_RANK) = 1
  end type nn_array

  public :: nn_load, nn_free, nn_forward, nn_set_num_threads, nn_get_num_threads, nn_version
  public :: nn_loaded, nn_device, nn_engine, nn_record_start, nn_record_array, nn_record_stop
  public :: nn_stats, nn_get_stats, nn_stats_summary
  public :: NN_FLAG_NONFINITE_INPUT, NN_FLAG_NONFINITE_OUTPUT, NN_FLAG_OOD
  public :: nn_trainer, nn_train_create, nn_train_step, nn_train_sync, nn_train_version, nn_train_save, nn_train_free

  !> Bits of the per-column flags (enum nnc_flag).
  integer, parameter :: NN_FLAG_NONFINITE_INPUT = 1, NN_FLAG_NONFINITE_OUTPUT = 2, NN_FLAG_OOD = 4

  !> Add a host array to the record of the last forward call:
  !> nn_record_array(model, "state_before", u). Real32 or real64, rank 0 to 5.
  interface nn_record_array
    module procedure :: record_real32, record_real64
  end interface nn_record_array

  !> Describe a real(real32) or real(real64) array of rank 0 to 5 (no copy).
  interface nn_array
    module procedure :: nn_array_real32, nn_array_real64
  end interface nn_array

  !> An online trainer bound to a model (see nn_train_create). Default: none.
  type :: nn_trainer
    type(c_ptr) :: handle = c_null_ptr
  end type nn_trainer

  !> One training step: nn_train_step(trainer, x, y, loss=l) for one input and
  !> one target of the same kind, or with arrays of nn_array(...) descriptors.
  interface nn_train_step
    module procedure :: train_arrays, train_real32, train_real64
  end interface nn_train_step

  !> Run the model: nn_forward(model, x, y) for one input and one output of the
  !> same kind, or nn_forward(model, [nn_array(...), ...], [nn_array(...)]).
  interface nn_forward
    module procedure :: forward_arrays, forward_real32, forward_real64
  end interface nn_forward

contains

  !> Load a model file once; device is "cpu" (default), "cuda", "cuda:N" or
  !> "auto" (the MPI local rank's GPU when there is one, else the CPU).
  !> Guardrails: nonfinite = "error" (default), "fallback" or "off";
  !> ood = "off" (default), "flag" or "fallback"; ood_threshold overrides
  !> the model's. With a fallback policy every nn_forward passes fallback=.
  !> trusted_sha256: SHA-256 digests (hex, joined by ':') of the only files
  !> to load (a .pt2 package is native code); PYCLOSURE_TRUSTED_SHA256 in
  !> the environment does the same for hosts that cannot be edited.
  !> engine = "native", "torchscript" or "aoti": the only engine to accept;
  !> a file for another engine fails with NN_ERR_FORMAT, nothing loaded.
  subroutine nn_load(model, path, device, stat, errmsg, nonfinite, ood, ood_threshold, trusted_sha256, engine)
    type(nn_model), intent(inout) :: model
    character(len=*), intent(in) :: path
    character(len=*), intent(in), optional :: device
    integer, intent(out), optional :: stat
    character(len=*), intent(out), optional :: errmsg
    character(len=*), intent(in), optional :: nonfinite, ood, trusted_sha256, engine
    real(real64), intent(in), optional :: ood_threshold
    integer(c_int) :: status
    character(len=:), allocatable :: options, dev
    character(len=40) :: num
    if (c_associated(model%handle)) status = nnc_model_free(model%handle)
    dev = "cpu"
    if (present(device)) dev = device
    options = ""
    if (present(nonfinite)) options = options // "nonfinite=" // trim(nonfinite) // ","
    if (present(ood)) options = options // "ood=" // trim(ood) // ","
    if (present(trusted_sha256)) options = options // "trusted_sha256=" // trim(trusted_sha256) // ","
    if (present(engine)) options = options // "engine=" // trim(engine) // ","
    if (present(ood_threshold)) then
      write (num, '(es24.17)') ood_threshold
      options = options // "ood_threshold=" // trim(adjustl(num))
    end if
    status = nnc_model_load_with(model%handle, to_c(path), to_c(dev), to_c(options))
    call finish(status, "nn_load", stat, errmsg)
  end subroutine nn_load

  !> Statistics since load: calls, columns, time per call, fallbacks by reason.
  subroutine nn_get_stats(model, stats, stat, errmsg)
    type(nn_model), intent(in) :: model
    type(nn_stats), intent(out) :: stats
    integer, intent(out), optional :: stat
    character(len=*), intent(out), optional :: errmsg
    call finish(nnc_model_stats(model%handle, stats), "nn_get_stats", stat, errmsg)
  end subroutine nn_get_stats

  !> The statistics as one line of text (what NN_CLOSURE_STATS=1 prints at nn_free).
  function nn_stats_summary(model) result(text)
    type(nn_model), intent(in) :: model
    character(len=:), allocatable :: text
    character(kind=c_char) :: buf(1024)
    buf = c_null_char
    if (nnc_model_stats_summary(model%handle, buf, int(size(buf), c_size_t)) /= NN_OK) then
      text = last_error()
    else
      text = from_c(buf)
    end if
  end function nn_stats_summary

  !> Free a model. Freeing twice, or freeing a model never loaded, is fine.
  subroutine nn_free(model, stat, errmsg)
    type(nn_model), intent(inout) :: model
    integer, intent(out), optional :: stat
    character(len=*), intent(out), optional :: errmsg
    call finish(nnc_model_free(model%handle), "nn_free", stat, errmsg)
  end subroutine nn_free

  !> .true. when the model holds a loaded file.
  logical function nn_loaded(model)
    type(nn_model), intent(in) :: model
    nn_loaded = c_associated(model%handle)
  end function nn_loaded

  !> The device a model runs on ("cpu", "cuda:0", ...).
  function nn_device(model, stat, errmsg) result(device)
    type(nn_model), intent(in) :: model
    integer, intent(out), optional :: stat
    character(len=*), intent(out), optional :: errmsg
    character(len=:), allocatable :: device
    character(kind=c_char) :: buf(64)
    buf = c_null_char
    call finish(nnc_model_device(model%handle, buf, int(size(buf), c_size_t)), "nn_device", stat, errmsg)
    device = from_c(buf)
  end function nn_device

  !> The engine that runs a model: "torchscript" or "aotinductor".
  function nn_engine(model, stat, errmsg) result(engine)
    type(nn_model), intent(in) :: model
    integer, intent(out), optional :: stat
    character(len=*), intent(out), optional :: errmsg
    character(len=:), allocatable :: engine
    character(kind=c_char) :: buf(32)
    buf = c_null_char
    call finish(nnc_model_engine(model%handle, buf, int(size(buf), c_size_t)), "nn_engine", stat, errmsg)
    engine = from_c(buf)
  end function nn_engine

  !> Set the intra-op thread count of every later call (default: NN_CLOSURE_NUM_THREADS, else 1).
  subroutine nn_set_num_threads(n, stat, errmsg)
    integer, intent(in) :: n
    integer, intent(out), optional :: stat
    character(len=*), intent(out), optional :: errmsg
    call finish(nnc_set_num_threads(int(n, c_int)), "nn_set_num_threads", stat, errmsg)
  end subroutine nn_set_num_threads

  !> The intra-op thread count calls run with.
  integer function nn_get_num_threads()
    integer(c_int) :: n, status
    status = nnc_get_num_threads(n)
    nn_get_num_threads = int(n)
  end function nn_get_num_threads

  !> The bridge version and the libtorch version it runs on.
  function nn_version() result(version)
    character(len=:), allocatable :: version
    type(c_ptr) :: v, t
    if (nnc_version(v, t) /= NN_OK) then
      version = "unknown"
    else
      version = c_string(v) // " (libtorch " // c_string(t) // ")"
    end if
  end function nn_version

  !> The general form: any number of inputs and outputs. fallback: the host's
  !> classical result for the first size(fallback) outputs (same shapes);
  !> columns flagged under a fallback policy get it. flags (one per column)
  !> receives NN_FLAG_* bits, 0 for a clean column. on_device=.true.: every
  !> array (flags too) lives where the model runs, e.g. GPU memory passed from
  !> an OpenACC `host_data use_device` region (nnc_model_forward_on_device in
  !> nn_closure.h says what is checked, and when the outputs are ready).
  subroutine forward_arrays(model, inputs, outputs, stat, errmsg, fallback, flags, on_device)
    type(nn_model), intent(in) :: model
    type(nn_array), intent(in) :: inputs(:), outputs(:)
    integer, intent(out), optional :: stat
    character(len=*), intent(out), optional :: errmsg
    type(nn_array), intent(in), optional :: fallback(:)
    integer(c_int32_t), intent(inout), contiguous, target, optional :: flags(:)
    logical, intent(in), optional :: on_device
    type(nnc_array), target :: cin(size(inputs)), cout(size(outputs)), cflags(1)
    type(nnc_array), target :: cfb1(1)
    type(nnc_array), allocatable, target :: cfbs(:)
    integer(c_int64_t), target :: sin(NNC_MAX_RANK, size(inputs)), sout(NNC_MAX_RANK, size(outputs))
    integer(c_int64_t), target :: sfb1(NNC_MAX_RANK, 1)
    integer(c_int64_t), allocatable, target :: sfb(:, :)
    integer(c_int) :: status, nfb
    type(c_ptr) :: pflags
    character(len=:), allocatable :: message
    status = to_descriptors(inputs, cin, sin, "input", message)
    if (status == NN_OK) status = to_descriptors(outputs, cout, sout, "output", message)
    nfb = 0
    if (present(fallback)) then  ! one fallback (the common case) needs no heap allocation
      nfb = int(size(fallback), c_int)
      if (nfb > 1) allocate (cfbs(nfb), sfb(NNC_MAX_RANK, nfb))
      if (status == NN_OK .and. nfb == 1) status = to_descriptors(fallback, cfb1, sfb1, "fallback", message)
      if (status == NN_OK .and. nfb > 1) status = to_descriptors(fallback, cfbs, sfb, "fallback", message)
    end if
    pflags = c_null_ptr
    if (present(flags)) then
      cflags(1)%data = c_null_ptr
      if (size(flags) > 0) cflags(1)%data = c_loc(flags(1))
      cflags(1)%dtype = NNC_INT32
      cflags(1)%rank = 1
      cflags(1)%order = NNC_ORDER_F
      cflags(1)%shape = 0
      cflags(1)%shape(1) = size(flags, kind=c_int64_t)
      cflags(1)%strides = c_null_ptr
      pflags = c_loc(cflags(1))
    end if
    if (status == NN_OK .and. nfb > 1) then
      status = run(cfbs)
    else if (status == NN_OK) then
      status = run(cfb1)
    end if
    call finish(status, "nn_forward", stat, errmsg, message)
  contains
    integer(c_int) function run(cfb)
      type(nnc_array), intent(in) :: cfb(:)
      logical :: device
      device = .false.
      if (present(on_device)) device = on_device
      if (device) then
        run = nnc_model_forward_on_device_fallback(model%handle, int(size(inputs), c_int), cin, &
            int(size(outputs), c_int), cout, nfb, cfb, pflags)
      else
        run = nnc_model_forward_fallback(model%handle, int(size(inputs), c_int), cin, &
            int(size(outputs), c_int), cout, nfb, cfb, pflags)
      end if
    end function run
  end subroutine forward_arrays

  !> Record every `every`-th forward call (default 1) into directory dir for
  !> `pyclosure replay`; max_mb caps the disk use (default 1024 MB: at the cap
  !> recording stops, says so on stderr and in dir/recording.json).
  subroutine nn_record_start(model, dir, every, max_mb, stat, errmsg)
    type(nn_model), intent(in) :: model
    character(len=*), intent(in) :: dir
    integer, intent(in), optional :: every, max_mb
    integer, intent(out), optional :: stat
    character(len=*), intent(out), optional :: errmsg
    integer(c_int) :: n
    integer(c_int64_t) :: cap
    n = 1
    cap = 0
    if (present(every)) n = int(every, c_int)
    if (present(max_mb)) cap = int(max_mb, c_int64_t) * 1048576_c_int64_t
    call finish(nnc_record_start(model%handle, to_c(dir), n, cap), "nn_record_start", stat, errmsg)
  end subroutine nn_record_start

  !> Write the last record and stop recording (nn_free does this too).
  subroutine nn_record_stop(model, stat, errmsg)
    type(nn_model), intent(in) :: model
    integer, intent(out), optional :: stat
    character(len=*), intent(out), optional :: errmsg
    call finish(nnc_record_stop(model%handle), "nn_record_stop", stat, errmsg)
  end subroutine nn_record_stop

  !> The common part of nn_record_array.
  subroutine record_described(model, name, a, stat, errmsg)
    type(nn_model), intent(in) :: model
    character(len=*), intent(in) :: name
    type(nn_array), intent(in) :: a
    integer, intent(out), optional :: stat
    character(len=*), intent(out), optional :: errmsg
    type(nnc_array), target :: desc(1)
    integer(c_int64_t), target :: st(NNC_MAX_RANK, 1)
    integer(c_int) :: status
    character(len=:), allocatable :: message
    status = to_descriptors([a], desc, st, "host array " // trim(name) // ":", message)
    if (status == NN_OK) status = nnc_record_array(model%handle, to_c(name), desc(1))
    call finish(status, "nn_record_array", stat, errmsg, message)
  end subroutine record_described

  !> Fill C descriptors from nn_array values; strides point into st.
  integer(c_int) function to_descriptors(arrays, desc, st, what, message) result(status)
    type(nn_array), intent(in) :: arrays(:)
    type(nnc_array), intent(out) :: desc(:)
    integer(c_int64_t), intent(inout), target :: st(:, :)
    character(len=*), intent(in) :: what
    character(len=:), allocatable, intent(inout) :: message
    integer :: i
    character(len=12) :: num, rnk
    status = NN_OK
    do i = 1, size(arrays)
      if (arrays(i)%rank < 0) then
        write (num, '(i0)') i
        write (rnk, '(i0)') -arrays(i)%rank
        message = what // " " // trim(num) // " has rank " // trim(rnk) // &
            "; nn_closure passes ranks 0 to 5"
        status = NN_ERR_RANK
        return
      end if
      desc(i)%data = arrays(i)%data
      desc(i)%dtype = arrays(i)%dtype
      desc(i)%rank = int(arrays(i)%rank, c_int)
      desc(i)%order = NNC_ORDER_F
      desc(i)%shape = arrays(i)%shape
      desc(i)%strides = c_null_ptr
      if (arrays(i)%strided) then
        st(:, i) = arrays(i)%strides
        desc(i)%strides = c_loc(st(1, i))
      end if
    end do
  end function to_descriptors

  !> Byte distance from a to b, in elements of the given size.
  pure integer(c_int64_t) function elements_between(a, b, bytes)
    type(c_ptr), intent(in) :: a, b
    integer, intent(in) :: bytes
    elements_between = (transfer(b, 0_c_intptr_t) - transfer(a, 0_c_intptr_t)) / bytes
  end function elements_between

  !> Common part of every nn_array constructor.
  subroutine start_array(a, dtype, shp)
    type(nn_array), intent(out) :: a
    integer(c_int), intent(in) :: dtype
    integer(c_int64_t), intent(in) :: shp(:)
    a%dtype = dtype
    a%rank = size(shp)
    a%shape(1:size(shp)) = shp
  end subroutine start_array

  !> Mark an array strided unless its measured strides are the contiguous ones.
  subroutine settle_strides(a)
    type(nn_array), intent(inout) :: a
    integer(c_int64_t) :: expect
    integer :: d
    expect = 1
    a%strided = .false.
    do d = 1, a%rank
      if (a%shape(d) > 1 .and. a%strides(d) /= expect) a%strided = .true.
      expect = expect * a%shape(d)
    end do
  end subroutine settle_strides

  !> Map a status to stat/errmsg, or stop with the message when stat is absent.
  subroutine finish(status, where, stat, errmsg, local_message)
    integer(c_int), intent(in) :: status
    character(len=*), intent(in) :: where
    integer, intent(out), optional :: stat
    character(len=*), intent(out), optional :: errmsg
    character(len=:), allocatable, intent(in), optional :: local_message
    character(len=:), allocatable :: message
    if (present(stat)) stat = int(status)
    if (status == NN_OK) then
      if (present(errmsg)) errmsg = ""
      return
    end if
    message = last_error()
    if (present(local_message)) then
      if (allocated(local_message)) message = local_message
    end if
    if (present(errmsg)) errmsg = message
    if (.not. present(stat)) error stop where // ": " // message
  end subroutine finish

  !> This thread's last bridge message.
  function last_error() result(message)
    character(len=:), allocatable :: message
    character(kind=c_char) :: buf(4096)
    integer(c_int) :: status
    buf = c_null_char
    status = nnc_last_error_copy(buf, int(size(buf), c_size_t))
    message = from_c(buf)
  end function last_error

  !> A NUL-terminated copy of a Fortran string (trailing blanks dropped).
  pure function to_c(s) result(c)
    character(len=*), intent(in) :: s
    character(kind=c_char) :: c(len_trim(s) + 1)
    integer :: i
    do i = 1, len_trim(s)
      c(i) = s(i:i)
    end do
    c(len_trim(s) + 1) = c_null_char
  end function to_c

  !> A Fortran string from a NUL-terminated character buffer.
  pure function from_c(buf) result(s)
    character(kind=c_char), intent(in) :: buf(:)
    character(len=:), allocatable :: s
    integer :: n, i
    n = 0
    do while (n < size(buf))
      if (buf(n + 1) == c_null_char) exit
      n = n + 1
    end do
    allocate (character(len=n) :: s)
    do i = 1, n
      s(i:i) = buf(i)
    end do
  end function from_c

  !> A Fortran string from a C string pointer.
  function c_string(p) result(s)
    type(c_ptr), intent(in) :: p
    character(len=:), allocatable :: s
    character(kind=c_char), pointer :: chars(:)
    call c_f_pointer(p, chars, [256])
    s = from_c(chars)
  end function c_string

  ! ---- Online training (nnc_train_* in nn_closure.h)

  !> Create a trainer for a loaded model. spec: "file.py:function" or
  !> "package.module:function" returning a pyclosure.online.TrainingSpec;
  !> absent: train the model's own TorchScript network with Adam on MSE.
  !> options: "key=value, ..." for the spec (lr=1e-3, ...). versions: a folder
  !> where every synced weight version is saved for replay. rank, nranks and
  !> rendezvous (a file path all ranks share): data-parallel training over MPI
  !> ranks (torch.distributed, gloo). Starts Python in this process.
  subroutine nn_train_create(trainer, model, spec, options, versions, rank, nranks, rendezvous, stat, errmsg)
    type(nn_trainer), intent(inout) :: trainer
    type(nn_model), intent(in) :: model
    character(len=*), intent(in), optional :: spec, options, versions, rendezvous
    integer, intent(in), optional :: rank, nranks
    integer, intent(out), optional :: stat
    character(len=*), intent(out), optional :: errmsg
    character(len=:), allocatable :: opts, sp
    character(len=24) :: num
    integer(c_int) :: status
    if (c_associated(trainer%handle)) status = nnc_train_free(trainer%handle)
    sp = ""
    if (present(spec)) sp = spec
    opts = ""
    if (present(options)) opts = trim(options) // ","
    if (present(versions)) opts = opts // "versions=" // trim(versions) // ","
    if (present(rendezvous)) opts = opts // "rendezvous=" // trim(rendezvous) // ","
    if (present(rank)) then
      write (num, '(i0)') rank
      opts = opts // "rank=" // trim(num) // ","
    end if
    if (present(nranks)) then
      write (num, '(i0)') nranks
      opts = opts // "size=" // trim(num)
    end if
    call finish(nnc_train_create(trainer%handle, model%handle, to_c(sp), to_c(opts)), "nn_train_create", &
        stat, errmsg)
  end subroutine nn_train_create

  !> The general form: inputs as nn_forward takes them, targets shaped like
  !> the outputs. loss: the batch loss before the step (mean over ranks).
  subroutine train_arrays(trainer, inputs, targets, loss, stat, errmsg)
    type(nn_trainer), intent(in) :: trainer
    type(nn_array), intent(in) :: inputs(:), targets(:)
    real(real64), intent(out), optional :: loss
    integer, intent(out), optional :: stat
    character(len=*), intent(out), optional :: errmsg
    type(nnc_array) :: cin(size(inputs)), ctg(size(targets))
    integer(c_int64_t), target :: sin(NNC_MAX_RANK, size(inputs)), stg(NNC_MAX_RANK, size(targets))
    integer(c_int) :: status
    real(real64) :: value
    character(len=:), allocatable :: message
    status = to_descriptors(inputs, cin, sin, "input", message)
    if (status == NN_OK) status = to_descriptors(targets, ctg, stg, "target", message)
    value = 0
    if (status == NN_OK) status = nnc_train_step(trainer%handle, int(size(inputs), c_int), cin, &
        int(size(targets), c_int), ctg, value)
    if (present(loss)) loss = value
    call finish(status, "nn_train_step", stat, errmsg, message)
  end subroutine train_arrays

  !> Put the trainer's weights into the running model (no recompilation); a new
  !> weight version, named by the records made after it.
  subroutine nn_train_sync(trainer, model, stat, errmsg)
    type(nn_trainer), intent(in) :: trainer
    type(nn_model), intent(in) :: model
    integer, intent(out), optional :: stat
    character(len=*), intent(out), optional :: errmsg
    call finish(nnc_train_sync(trainer%handle, model%handle), "nn_train_sync", stat, errmsg)
  end subroutine nn_train_sync

  !> The weight version last synced (0 before the first nn_train_sync).
  integer function nn_train_version(trainer)
    type(nn_trainer), intent(in) :: trainer
    integer(c_int64_t) :: v
    v = 0
    if (nnc_train_version(trainer%handle, v) /= NN_OK) v = -1
    nn_train_version = int(v)
  end function nn_train_version

  !> Save a checkpoint (weights, optimiser state, step count); Python reads it
  !> with torch.load(path, weights_only=True).
  subroutine nn_train_save(trainer, path, stat, errmsg)
    type(nn_trainer), intent(in) :: trainer
    character(len=*), intent(in) :: path
    integer, intent(out), optional :: stat
    character(len=*), intent(out), optional :: errmsg
    call finish(nnc_train_save(trainer%handle, to_c(path)), "nn_train_save", stat, errmsg)
  end subroutine nn_train_save

  !> Free a trainer (idempotent). The model keeps its synced weights.
  subroutine nn_train_free(trainer, stat, errmsg)
    type(nn_trainer), intent(inout) :: trainer
    integer, intent(out), optional :: stat
    character(len=*), intent(out), optional :: errmsg
    call finish(nnc_train_free(trainer%handle), "nn_train_free", stat, errmsg)
  end subroutine nn_train_free

!--- begin generated by fortran/generate.py: do not edit by hand
  !> Describe a real(real32) array of rank 0 to 5 for nn_forward, in place.
  function nn_array_real32(x) result(a)
    real(real32), intent(in), target :: x(..)
    type(nn_array) :: a
    integer :: lb(5)  ! lower bounds: see index()
    select rank (x)
    rank (0)
      call start_array(a, NNC_FLOAT32, shape(x, kind=c_int64_t))
      a%data = c_loc(x)
    rank (1)
      call start_array(a, NNC_FLOAT32, shape(x, kind=c_int64_t))
      if (size(x) > 0) then
        lb(1:rank(x)) = lbound(x)
        a%data = c_loc(x(lb(1)))
        if (size(x, 1) > 1) a%strides(1) = elements_between(a%data, c_loc(x(lb(1) + 1)), 4)
        call settle_strides(a)
      end if
    rank (2)
      call start_array(a, NNC_FLOAT32, shape(x, kind=c_int64_t))
      if (size(x) > 0) then
        lb(1:rank(x)) = lbound(x)
        a%data = c_loc(x(lb(1), lb(2)))
        if (size(x, 1) > 1) a%strides(1) = elements_between(a%data, c_loc(x(lb(1) + 1, lb(2))), 4)
        if (size(x, 2) > 1) a%strides(2) = elements_between(a%data, c_loc(x(lb(1), lb(2) + 1)), 4)
        call settle_strides(a)
      end if
    rank (3)
      call start_array(a, NNC_FLOAT32, shape(x, kind=c_int64_t))
      if (size(x) > 0) then
        lb(1:rank(x)) = lbound(x)
        a%data = c_loc(x(lb(1), lb(2), lb(3)))
        if (size(x, 1) > 1) a%strides(1) = elements_between(a%data, c_loc(x(lb(1) + 1, lb(2), lb(3))), 4)
        if (size(x, 2) > 1) a%strides(2) = elements_between(a%data, c_loc(x(lb(1), lb(2) + 1, lb(3))), 4)
        if (size(x, 3) > 1) a%strides(3) = elements_between(a%data, c_loc(x(lb(1), lb(2), lb(3) + 1)), 4)
        call settle_strides(a)
      end if
    rank (4)
      call start_array(a, NNC_FLOAT32, shape(x, kind=c_int64_t))
      if (size(x) > 0) then
        lb(1:rank(x)) = lbound(x)
        a%data = c_loc(x(lb(1), lb(2), lb(3), lb(4)))
        if (size(x, 1) > 1) a%strides(1) = elements_between(a%data, c_loc(x(lb(1) + 1, lb(2), lb(3), lb(4))), 4)
        if (size(x, 2) > 1) a%strides(2) = elements_between(a%data, c_loc(x(lb(1), lb(2) + 1, lb(3), lb(4))), 4)
        if (size(x, 3) > 1) a%strides(3) = elements_between(a%data, c_loc(x(lb(1), lb(2), lb(3) + 1, lb(4))), 4)
        if (size(x, 4) > 1) a%strides(4) = elements_between(a%data, c_loc(x(lb(1), lb(2), lb(3), lb(4) + 1)), 4)
        call settle_strides(a)
      end if
    rank (5)
      call start_array(a, NNC_FLOAT32, shape(x, kind=c_int64_t))
      if (size(x) > 0) then
        lb(1:rank(x)) = lbound(x)
        a%data = c_loc(x(lb(1), lb(2), lb(3), lb(4), lb(5)))
        if (size(x, 1) > 1) a%strides(1) = elements_between(a%data, c_loc(x(lb(1) + 1, lb(2), lb(3), lb(4), lb(5))), 4)
        if (size(x, 2) > 1) a%strides(2) = elements_between(a%data, c_loc(x(lb(1), lb(2) + 1, lb(3), lb(4), lb(5))), 4)
        if (size(x, 3) > 1) a%strides(3) = elements_between(a%data, c_loc(x(lb(1), lb(2), lb(3) + 1, lb(4), lb(5))), 4)
        if (size(x, 4) > 1) a%strides(4) = elements_between(a%data, c_loc(x(lb(1), lb(2), lb(3), lb(4) + 1, lb(5))), 4)
        if (size(x, 5) > 1) a%strides(5) = elements_between(a%data, c_loc(x(lb(1), lb(2), lb(3), lb(4), lb(5) + 1)), 4)
        call settle_strides(a)
      end if
    rank default
      a%rank = -rank(x)
    end select
  end function nn_array_real32

  !> One real(real32) input and one output of any rank 0 to 5; fallback (shaped
  !> like y), flags and on_device as in the general form.
  subroutine forward_real32(model, x, y, stat, errmsg, fallback, flags, on_device)
    type(nn_model), intent(in) :: model
    real(real32), intent(in), target :: x(..)
    real(real32), intent(inout), target :: y(..)
    integer, intent(out), optional :: stat
    character(len=*), intent(out), optional :: errmsg
    real(real32), intent(in), target, optional :: fallback(..)
    integer(c_int32_t), intent(inout), contiguous, target, optional :: flags(:)
    logical, intent(in), optional :: on_device
    if (present(fallback)) then
      call forward_arrays(model, [nn_array(x)], [nn_array(y)], stat, errmsg, [nn_array(fallback)], flags, &
          on_device)
    else
      call forward_arrays(model, [nn_array(x)], [nn_array(y)], stat, errmsg, flags=flags, on_device=on_device)
    end if
  end subroutine forward_real32

  !> Add a real(real32) host array of rank 0 to 5 to the current record.
  subroutine record_real32(model, name, x, stat, errmsg)
    type(nn_model), intent(in) :: model
    character(len=*), intent(in) :: name
    real(real32), intent(in), target :: x(..)
    integer, intent(out), optional :: stat
    character(len=*), intent(out), optional :: errmsg
    call record_described(model, name, nn_array(x), stat, errmsg)
  end subroutine record_real32

  !> One training step on one real(real32) input and one target of any rank 1 to 5.
  subroutine train_real32(trainer, x, y, loss, stat, errmsg)
    type(nn_trainer), intent(in) :: trainer
    real(real32), intent(in), target :: x(..), y(..)
    real(real64), intent(out), optional :: loss
    integer, intent(out), optional :: stat
    character(len=*), intent(out), optional :: errmsg
    call train_arrays(trainer, [nn_array(x)], [nn_array(y)], loss, stat, errmsg)
  end subroutine train_real32

  !> Describe a real(real64) array of rank 0 to 5 for nn_forward, in place.
  function nn_array_real64(x) result(a)
    real(real64), intent(in), target :: x(..)
    type(nn_array) :: a
    integer :: lb(5)  ! lower bounds: see index()
    select rank (x)
    rank (0)
      call start_array(a, NNC_FLOAT64, shape(x, kind=c_int64_t))
      a%data = c_loc(x)
    rank (1)
      call start_array(a, NNC_FLOAT64, shape(x, kind=c_int64_t))
      if (size(x) > 0) then
        lb(1:rank(x)) = lbound(x)
        a%data = c_loc(x(lb(1)))
        if (size(x, 1) > 1) a%strides(1) = elements_between(a%data, c_loc(x(lb(1) + 1)), 8)
        call settle_strides(a)
      end if
    rank (2)
      call start_array(a, NNC_FLOAT64, shape(x, kind=c_int64_t))
      if (size(x) > 0) then
        lb(1:rank(x)) = lbound(x)
        a%data = c_loc(x(lb(1), lb(2)))
        if (size(x, 1) > 1) a%strides(1) = elements_between(a%data, c_loc(x(lb(1) + 1, lb(2))), 8)
        if (size(x, 2) > 1) a%strides(2) = elements_between(a%data, c_loc(x(lb(1), lb(2) + 1)), 8)
        call settle_strides(a)
      end if
    rank (3)
      call start_array(a, NNC_FLOAT64, shape(x, kind=c_int64_t))
      if (size(x) > 0) then
        lb(1:rank(x)) = lbound(x)
        a%data = c_loc(x(lb(1), lb(2), lb(3)))
        if (size(x, 1) > 1) a%strides(1) = elements_between(a%data, c_loc(x(lb(1) + 1, lb(2), lb(3))), 8)
        if (size(x, 2) > 1) a%strides(2) = elements_between(a%data, c_loc(x(lb(1), lb(2) + 1, lb(3))), 8)
        if (size(x, 3) > 1) a%strides(3) = elements_between(a%data, c_loc(x(lb(1), lb(2), lb(3) + 1)), 8)
        call settle_strides(a)
      end if
    rank (4)
      call start_array(a, NNC_FLOAT64, shape(x, kind=c_int64_t))
      if (size(x) > 0) then
        lb(1:rank(x)) = lbound(x)
        a%data = c_loc(x(lb(1), lb(2), lb(3), lb(4)))
        if (size(x, 1) > 1) a%strides(1) = elements_between(a%data, c_loc(x(lb(1) + 1, lb(2), lb(3), lb(4))), 8)
        if (size(x, 2) > 1) a%strides(2) = elements_between(a%data, c_loc(x(lb(1), lb(2) + 1, lb(3), lb(4))), 8)
        if (size(x, 3) > 1) a%strides(3) = elements_between(a%data, c_loc(x(lb(1), lb(2), lb(3) + 1, lb(4))), 8)
        if (size(x, 4) > 1) a%strides(4) = elements_between(a%data, c_loc(x(lb(1), lb(2), lb(3), lb(4) + 1)), 8)
        call settle_strides(a)
      end if
    rank (5)
      call start_array(a, NNC_FLOAT64, shape(x, kind=c_int64_t))
      if (size(x) > 0) then
        lb(1:rank(x)) = lbound(x)
        a%data = c_loc(x(lb(1), lb(2), lb(3), lb(4), lb(5)))
        if (size(x, 1) > 1) a%strides(1) = elements_between(a%data, c_loc(x(lb(1) + 1, lb(2), lb(3), lb(4), lb(5))), 8)
        if (size(x, 2) > 1) a%strides(2) = elements_between(a%data, c_loc(x(lb(1), lb(2) + 1, lb(3), lb(4), lb(5))), 8)
        if (size(x, 3) > 1) a%strides(3) = elements_between(a%data, c_loc(x(lb(1), lb(2), lb(3) + 1, lb(4), lb(5))), 8)
        if (size(x, 4) > 1) a%strides(4) = elements_between(a%data, c_loc(x(lb(1), lb(2), lb(3), lb(4) + 1, lb(5))), 8)
        if (size(x, 5) > 1) a%strides(5) = elements_between(a%data, c_loc(x(lb(1), lb(2), lb(3), lb(4), lb(5) + 1)), 8)
        call settle_strides(a)
      end if
    rank default
      a%rank = -rank(x)
    end select
  end function nn_array_real64

  !> One real(real64) input and one output of any rank 0 to 5; fallback (shaped
  !> like y), flags and on_device as in the general form.
  subroutine forward_real64(model, x, y, stat, errmsg, fallback, flags, on_device)
    type(nn_model), intent(in) :: model
    real(real64), intent(in), target :: x(..)
    real(real64), intent(inout), target :: y(..)
    integer, intent(out), optional :: stat
    character(len=*), intent(out), optional :: errmsg
    real(real64), intent(in), target, optional :: fallback(..)
    integer(c_int32_t), intent(inout), contiguous, target, optional :: flags(:)
    logical, intent(in), optional :: on_device
    if (present(fallback)) then
      call forward_arrays(model, [nn_array(x)], [nn_array(y)], stat, errmsg, [nn_array(fallback)], flags, &
          on_device)
    else
      call forward_arrays(model, [nn_array(x)], [nn_array(y)], stat, errmsg, flags=flags, on_device=on_device)
    end if
  end subroutine forward_real64

  !> Add a real(real64) host array of rank 0 to 5 to the current record.
  subroutine record_real64(model, name, x, stat, errmsg)
    type(nn_model), intent(in) :: model
    character(len=*), intent(in) :: name
    real(real64), intent(in), target :: x(..)
    integer, intent(out), optional :: stat
    character(len=*), intent(out), optional :: errmsg
    call record_described(model, name, nn_array(x), stat, errmsg)
  end subroutine record_real64

  !> One training step on one real(real64) input and one target of any rank 1 to 5.
  subroutine train_real64(trainer, x, y, loss, stat, errmsg)
    type(nn_trainer), intent(in) :: trainer
    real(real64), intent(in), target :: x(..), y(..)
    real(real64), intent(out), optional :: loss
    integer, intent(out), optional :: stat
    character(len=*), intent(out), optional :: errmsg
    call train_arrays(trainer, [nn_array(x)], [nn_array(y)], loss, stat, errmsg)
  end subroutine train_real64
!--- end generated
end module nn_closure
