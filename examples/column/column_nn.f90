!> The radiation emulator of the column example, through `nn_closure`.
!>
!> The only file of the example that uses `nn_closure`. The emulator maps a
!> column's state to the net downward longwave flux at its nlev+1 interfaces,
!> exactly what the scheme `lw_fluxes` returns, so the host's flux-form update
!> is the same for both. Its one input is x(2*nlev+1, n): temperature (nlev),
!> specific humidity (nlev), surface temperature; its output fnet(nlev+1, n).
!> A guarded emulator (`pyclosure.ood.GuardedClosure`) has a second output,
!> the out-of-distribution score (n); under ood="fallback" the columns whose
!> score exceeds the contract's threshold get the scheme's fluxes, which the
!> host passes in `fallback`, and `flags` says which columns those were.
!>
!> Recording (`column_nn_record_update`): each sampled forward call's record
!> also gets the update the host made with the fluxes, under the names
!> `pyclosure replay` checks budgets with: state_before, state_after, flux
!> (the total the update used), other_flux (its non-radiative part),
!> applied_flux (the emulator's fluxes the host added), dt and dx (nlev, 1).
module column_nn
  use, intrinsic :: iso_fortran_env, only: real64, int32, error_unit
  use column_rad, only: dp
  use nn_closure, only: nn_model, nn_load, nn_forward, nn_free, nn_array, nn_record_start, &
      nn_record_array, nn_stats, nn_get_stats, nn_stats_summary, NN_OK
  implicit none
  private

  public :: column_nn_load, column_nn_free, column_nn_record, column_nn_record_update
  public :: nn_fluxes, column_nn_stats, column_nn_summary, column_nn_guarded

  type(nn_model) :: model
  logical :: guarded = .false.        ! two outputs: fluxes and OOD score
  real(dp), allocatable, target :: x(:, :), score(:)

contains

  !> Load the emulator from path. ood = "off" (a plain emulator), "flag" or
  !> "fallback" (a guarded one: the host then passes the scheme's fluxes).
  subroutine column_nn_load(path, ood, ierr, errmsg)
    character(len=*), intent(in) :: path, ood
    integer, intent(out) :: ierr
    character(len=*), intent(out) :: errmsg
    errmsg = ""
    guarded = trim(ood) /= "off"
    call nn_load(model, path, ood=ood, stat=ierr, errmsg=errmsg)
  end subroutine column_nn_load

  !> Whether the loaded emulator is guarded (ood /= "off").
  logical function column_nn_guarded()
    column_nn_guarded = guarded
  end function column_nn_guarded

  !> Free the emulator (safe to call twice).
  subroutine column_nn_free()
    call nn_free(model)
    if (allocated(x)) deallocate(x, score)
  end subroutine column_nn_free

  !> Record every every-th forward call into dir (new or empty).
  subroutine column_nn_record(dir, every, ierr, errmsg)
    character(len=*), intent(in) :: dir
    integer, intent(in) :: every
    integer, intent(out) :: ierr
    character(len=*), intent(out) :: errmsg
    call nn_record_start(model, dir, every=every, stat=ierr, errmsg=errmsg)
  end subroutine column_nn_record

  !> Add the host's update of the last forward call's block to its record
  !> (a no-op for calls not sampled).
  subroutine column_nn_record_update(before, after, flux, other, applied, dt, dx)
    real(dp), intent(in) :: before(:, :), after(:, :), flux(:, :), other(:, :), applied(:, :)
    real(dp), intent(in) :: dt, dx(:)
    call nn_record_array(model, "state_before", before)
    call nn_record_array(model, "state_after", after)
    call nn_record_array(model, "flux", flux)
    call nn_record_array(model, "other_flux", other)
    call nn_record_array(model, "applied_flux", applied)
    call nn_record_array(model, "dt", dt)
    call nn_record_array(model, "dx", reshape(dx, [size(dx), 1]))  ! (nlev, 1): one per layer, any column
  end subroutine column_nn_record_update

  !> Emulated net downward fluxes of a block of n columns. A guarded emulator
   !> needs fallback (the scheme's fluxes of the block) under ood="fallback";
  !> flags(j) /= 0 marks a column that got them. A failing call stops the
  !> run with the bridge's message.
  subroutine nn_fluxes(nlev, n, t, q, ts, fnet, fallback, flags)
    integer, intent(in) :: nlev, n
    real(dp), intent(in) :: t(nlev, n), q(nlev, n), ts(n)
    real(dp), intent(out), target :: fnet(nlev + 1, n)
    real(dp), intent(in), target, optional :: fallback(nlev + 1, n)
    integer(int32), intent(inout), optional :: flags(n)
    integer :: ierr
    character(len=512) :: msg
    if (allocated(x)) then
      if (size(x, 1) /= 2 * nlev + 1 .or. size(x, 2) /= n) deallocate(x, score)
    end if
    if (.not. allocated(x)) allocate(x(2 * nlev + 1, n), score(n))
    x(1:nlev, :) = t
    x(nlev + 1:2 * nlev, :) = q
    x(2 * nlev + 1, :) = ts
    if (.not. guarded) then
      call nn_forward(model, x, fnet, stat=ierr, errmsg=msg)
    else if (present(fallback)) then
      call nn_forward(model, [nn_array(x)], [nn_array(fnet), nn_array(score)], stat=ierr, errmsg=msg, &
          fallback=[nn_array(fallback)], flags=flags)
    else
      call nn_forward(model, [nn_array(x)], [nn_array(fnet), nn_array(score)], stat=ierr, errmsg=msg, &
          flags=flags)
    end if
    if (ierr /= NN_OK) then
      write (error_unit, '(a)') "column_nn: forward pass failed: "//trim(msg)
      error stop 1
    end if
  end subroutine nn_fluxes

  !> The bridge's statistics of the emulator since load.
  subroutine column_nn_stats(stats)
    type(nn_stats), intent(out) :: stats
    call nn_get_stats(model, stats)
  end subroutine column_nn_stats

  !> The statistics as one line.
  function column_nn_summary() result(text)
    character(len=:), allocatable :: text
    text = nn_stats_summary(model)
  end function column_nn_summary

end module column_nn
