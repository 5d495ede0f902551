!> Private bind(c) interfaces of the pyclosure bridge, mirroring
!> cbridge/include/nn_closure.h one to one. Host models use nn_closure,
!> never this module.
module nn_closure_c
  use, intrinsic :: iso_c_binding, only: c_char, c_double, c_int, c_int64_t, c_null_ptr, c_ptr, c_size_t
  implicit none
  private

  integer, parameter, public :: NNC_MAX_RANK = 8, NNC_NAME_LEN = 64
  integer(c_int), parameter, public :: NNC_ORDER_F = 1

  !> Statistics of one model (struct nnc_stats); public through nn_closure.
  type, bind(c), public :: nn_stats
    integer(c_int64_t) :: calls = 0, errors = 0, columns = 0, fallback_columns = 0
    integer(c_int64_t) :: nonfinite_input_columns = 0, nonfinite_output_columns = 0, ood_columns = 0
    real(c_double) :: time_min = 0, time_median = 0, time_max = 0, time_total = 0
    integer(c_int64_t) :: reserved(6) = 0
  end type nn_stats

  !> An array as the caller sees it (struct nnc_array).
  type, bind(c), public :: nnc_array
    type(c_ptr) :: data = c_null_ptr
    integer(c_int) :: dtype = 0
    integer(c_int) :: rank = 0
    integer(c_int) :: order = NNC_ORDER_F
    integer(c_int64_t) :: shape(NNC_MAX_RANK) = 0
    type(c_ptr) :: strides = c_null_ptr
  end type nnc_array

  !> One input or output of a model's contract (struct nnc_io_info).
  type, bind(c), public :: nnc_io_info
    character(kind=c_char) :: name(NNC_NAME_LEN)
    integer(c_int) :: dtype
    integer(c_int) :: rank
    integer(c_int64_t) :: shape(NNC_MAX_RANK)
  end type nnc_io_info

  public :: nnc_version, nnc_last_error_copy, nnc_set_num_threads, nnc_get_num_threads
  public :: nnc_model_load, nnc_model_free, nnc_model_forward, nnc_model_num_io, nnc_model_io
  public :: nnc_model_device, nnc_model_engine, nnc_record_start, nnc_record_array, nnc_record_stop
  public :: nnc_model_load_with, nnc_model_forward_fallback, nnc_model_stats, nnc_model_stats_summary
  public :: nnc_train_create, nnc_train_step, nnc_train_sync, nnc_train_version, nnc_train_save, nnc_train_free
  public :: nnc_model_forward_on_device_fallback

  interface
    integer(c_int) function nnc_version(version, libtorch_version) bind(c, name="nnc_version")
      import :: c_int, c_ptr
      type(c_ptr), intent(out) :: version, libtorch_version
    end function nnc_version

    integer(c_int) function nnc_last_error_copy(buf, buflen) bind(c, name="nnc_last_error_copy")
      import :: c_int, c_char, c_size_t
      character(kind=c_char), intent(out) :: buf(*)
      integer(c_size_t), value :: buflen
    end function nnc_last_error_copy

    integer(c_int) function nnc_set_num_threads(n) bind(c, name="nnc_set_num_threads")
      import :: c_int
      integer(c_int), value :: n
    end function nnc_set_num_threads

    integer(c_int) function nnc_get_num_threads(n) bind(c, name="nnc_get_num_threads")
      import :: c_int
      integer(c_int), intent(out) :: n
    end function nnc_get_num_threads

    integer(c_int) function nnc_model_load(model, path, device) bind(c, name="nnc_model_load")
      import :: c_int, c_ptr, c_char
      type(c_ptr), intent(out) :: model
      character(kind=c_char), intent(in) :: path(*), device(*)
    end function nnc_model_load

    integer(c_int) function nnc_model_free(model) bind(c, name="nnc_model_free")
      import :: c_int, c_ptr
      type(c_ptr), intent(inout) :: model
    end function nnc_model_free

    integer(c_int) function nnc_model_device(model, buf, buflen) bind(c, name="nnc_model_device")
      import :: c_int, c_ptr, c_char, c_size_t
      type(c_ptr), value :: model
      character(kind=c_char), intent(out) :: buf(*)
      integer(c_size_t), value :: buflen
    end function nnc_model_device

    integer(c_int) function nnc_model_engine(model, buf, buflen) bind(c, name="nnc_model_engine")
      import :: c_int, c_ptr, c_char, c_size_t
      type(c_ptr), value :: model
      character(kind=c_char), intent(out) :: buf(*)
      integer(c_size_t), value :: buflen
    end function nnc_model_engine

    integer(c_int) function nnc_model_num_io(model, num_inputs, num_outputs) bind(c, name="nnc_model_num_io")
      import :: c_int, c_ptr
      type(c_ptr), value :: model
      integer(c_int), intent(out) :: num_inputs, num_outputs
    end function nnc_model_num_io

    integer(c_int) function nnc_model_io(model, is_output, idx, info) bind(c, name="nnc_model_io")
      import :: c_int, c_ptr, nnc_io_info
      type(c_ptr), value :: model
      integer(c_int), value :: is_output, idx
      type(nnc_io_info), intent(out) :: info
    end function nnc_model_io

    integer(c_int) function nnc_model_forward(model, num_inputs, inputs, num_outputs, outputs) &
        bind(c, name="nnc_model_forward")
      import :: c_int, c_ptr, nnc_array
      type(c_ptr), value :: model
      integer(c_int), value :: num_inputs, num_outputs
      type(nnc_array), intent(in) :: inputs(*), outputs(*)
    end function nnc_model_forward

    integer(c_int) function nnc_record_start(model, dir, every, max_bytes) bind(c, name="nnc_record_start")
      import :: c_ptr, c_char, c_int, c_int64_t
      type(c_ptr), value :: model
      character(kind=c_char), intent(in) :: dir(*)
      integer(c_int), value :: every
      integer(c_int64_t), value :: max_bytes
    end function nnc_record_start

    integer(c_int) function nnc_record_array(model, name, array) bind(c, name="nnc_record_array")
      import :: c_ptr, c_char, c_int, nnc_array
      type(c_ptr), value :: model
      character(kind=c_char), intent(in) :: name(*)
      type(nnc_array), intent(in) :: array
    end function nnc_record_array

    integer(c_int) function nnc_record_stop(model) bind(c, name="nnc_record_stop")
      import :: c_ptr, c_int
      type(c_ptr), value :: model
    end function nnc_record_stop

    integer(c_int) function nnc_model_load_with(model, path, device, options) bind(c, name="nnc_model_load_with")
      import :: c_ptr, c_char, c_int
      type(c_ptr), intent(out) :: model
      character(kind=c_char), intent(in) :: path(*), device(*), options(*)
    end function nnc_model_load_with

    integer(c_int) function nnc_model_forward_fallback(model, num_inputs, inputs, num_outputs, outputs, &
        num_fallback, fallback, flags) bind(c, name="nnc_model_forward_fallback")
      import :: c_int, c_ptr, nnc_array
      type(c_ptr), value :: model
      integer(c_int), value :: num_inputs, num_outputs, num_fallback
      type(nnc_array), intent(in) :: inputs(*), outputs(*), fallback(*)
      type(c_ptr), value :: flags
    end function nnc_model_forward_fallback

    integer(c_int) function nnc_model_forward_on_device_fallback(model, num_inputs, inputs, num_outputs, outputs, &
        num_fallback, fallback, flags) bind(c, name="nnc_model_forward_on_device_fallback")
      import :: c_int, c_ptr, nnc_array
      type(c_ptr), value :: model
      integer(c_int), value :: num_inputs, num_outputs, num_fallback
      type(nnc_array), intent(in) :: inputs(*), outputs(*), fallback(*)
      type(c_ptr), value :: flags
    end function nnc_model_forward_on_device_fallback

    integer(c_int) function nnc_model_stats(model, stats) bind(c, name="nnc_model_stats")
      import :: c_int, c_ptr, nn_stats
      type(c_ptr), value :: model
      type(nn_stats), intent(out) :: stats
    end function nnc_model_stats

    integer(c_int) function nnc_model_stats_summary(model, buf, buflen) bind(c, name="nnc_model_stats_summary")
      import :: c_char, c_int, c_ptr, c_size_t
      type(c_ptr), value :: model
      character(kind=c_char), intent(out) :: buf(*)
      integer(c_size_t), value :: buflen
    end function nnc_model_stats_summary

    ! ---- Online training
    integer(c_int) function nnc_train_create(trainer, model, spec, options) bind(c, name="nnc_train_create")
      import :: c_char, c_int, c_ptr
      type(c_ptr), intent(out) :: trainer
      type(c_ptr), value :: model
      character(kind=c_char), intent(in) :: spec(*), options(*)
    end function nnc_train_create

    integer(c_int) function nnc_train_step(trainer, num_inputs, inputs, num_targets, targets, loss) &
        bind(c, name="nnc_train_step")
      import :: c_double, c_int, c_ptr, nnc_array
      type(c_ptr), value :: trainer
      integer(c_int), value :: num_inputs, num_targets
      type(nnc_array), intent(in) :: inputs(*), targets(*)
      real(c_double), intent(out) :: loss
    end function nnc_train_step

    integer(c_int) function nnc_train_sync(trainer, model) bind(c, name="nnc_train_sync")
      import :: c_int, c_ptr
      type(c_ptr), value :: trainer, model
    end function nnc_train_sync

    integer(c_int) function nnc_train_version(trainer, version) bind(c, name="nnc_train_version")
      import :: c_int, c_int64_t, c_ptr
      type(c_ptr), value :: trainer
      integer(c_int64_t), intent(out) :: version
    end function nnc_train_version

    integer(c_int) function nnc_train_save(trainer, path) bind(c, name="nnc_train_save")
      import :: c_char, c_int, c_ptr
      type(c_ptr), value :: trainer
      character(kind=c_char), intent(in) :: path(*)
    end function nnc_train_save

    integer(c_int) function nnc_train_free(trainer) bind(c, name="nnc_train_free")
      import :: c_int, c_ptr
      type(c_ptr), intent(inout) :: trainer
    end function nnc_train_free
  end interface
end module nn_closure_c
