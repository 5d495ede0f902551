!> Learned subgrid closure for the Burgers example, through `nn_closure`.
!>
!> The only file of the example that uses `nn_closure`. `burgers_nn_load`
!> loads a TorchScript closure and installs `nn_sgs_flux` as the subgrid hook
!> of `burgers_core`; after that `set_closure("nn", ...)` uses it.
!>
!> Layout: the cell values are passed as a rank-2 array `u2(n, 1)`, which the
!> model sees as the torch tensor (1, n): a batch of one domain with n cells.
!> It must return (1, n): the subgrid flux at the n faces, column j (0-based)
!> being the LEFT face of cell j+1 (periodic).
!>
!> Recording (`burgers_nn_record`): every sampled forward call's record also
!> gets what the Runge-Kutta stage then did with the flux, under the names
!> `pyclosure replay` checks budgets with: state_before, state_after, flux
!> (the total the update used, n+1 faces), other_flux (its non-closure part,
!> resolved + viscous, n+1 faces), source, dt, dx; given_x (the cells the
!> closure's input was built from) and applied_flux (the subgrid flux the host
!> added to other_flux at the n faces). Replay checks input == given_x,
!> output == applied_flux, flux == other_flux + applied_flux and the update
!> from flux, all bit for bit: the closure's flux is tied to the update.
!>
!> Online training (`burgers_nn_train`, `burgers_nn_learn`, `burgers_nn_sync`):
!> a trainer bound to the loaded closure takes one step per call on the
!> closure's input cells and a target array (the online example passes its
!> DNS companion's fine state; its training spec coarse-grains that into the
!> subgrid flux), and a sync puts the trained weights into the running closure.
module burgers_nn
  use, intrinsic :: iso_fortran_env, only: real64, error_unit
  use nn_closure, only: nn_model, nn_load, nn_forward, nn_free, nn_record_start, nn_record_array, NN_OK, &
      nn_trainer, nn_train_create, nn_train_step, nn_train_sync, nn_train_version, &
      nn_train_save, nn_train_free
  use burgers_hook, only: sgs_hook, stage_hook
  implicit none
  private

  public :: burgers_nn_load, burgers_nn_free, burgers_nn_record, nn_sgs_flux
  public :: burgers_nn_train, burgers_nn_learn, burgers_nn_sync, burgers_nn_save

  type(nn_model) :: model              ! the loaded closure
  type(nn_trainer) :: trainer          ! its online trainer (burgers_nn_train)
  real(real64), allocatable :: u2(:, :), tau2(:, :)  ! (n, 1) buffers
  real(real64), allocatable :: x2(:, :), y2(:, :)    ! training step buffers

contains

  !> Load the closure from `path` on `device` and install it as the hook.
  subroutine burgers_nn_load(path, device, ierr, errmsg)
    character(len=*), intent(in) :: path    !< TorchScript file
    character(len=*), intent(in) :: device  !< "cpu", "cuda:0", "auto"
    integer, intent(out) :: ierr            !< NN_OK on success
    character(len=*), intent(out) :: errmsg !< message when ierr /= NN_OK
    errmsg = ""
    call nn_load(model, path, device=device, stat=ierr, errmsg=errmsg)
    if (ierr == NN_OK) sgs_hook => nn_sgs_flux
  end subroutine burgers_nn_load

  !> Remove the hook and free the closure (safe to call twice).
  subroutine burgers_nn_free()
    nullify(sgs_hook, stage_hook)
    call nn_train_free(trainer)
    call nn_free(model)
    if (allocated(u2)) deallocate(u2, tau2)
    if (allocated(x2)) deallocate(x2, y2)
  end subroutine burgers_nn_free

  !> Start training the loaded closure online (after burgers_nn_load): `spec`
   !> and `options` as nn_train_create takes them; every synced weight version
  !> is saved in `versions` when it is not empty.
  subroutine burgers_nn_train(spec, options, versions, ierr, errmsg)
    character(len=*), intent(in) :: spec     !< "file.py:function" or "package.module:function"
    character(len=*), intent(in) :: options  !< "key=value, ..." for the spec
    character(len=*), intent(in) :: versions !< folder for the weight versions, or ""
    integer, intent(out) :: ierr             !< NN_OK on success
    character(len=*), intent(out) :: errmsg  !< message when ierr /= NN_OK
    errmsg = ""
    if (len_trim(versions) > 0) then
      call nn_train_create(trainer, model, spec=spec, options=options, versions=versions, stat=ierr, errmsg=errmsg)
    else
      call nn_train_create(trainer, model, spec=spec, options=options, stat=ierr, errmsg=errmsg)
    end if
  end subroutine burgers_nn_train

  !> One training step: the closure's input cells `cells` (size n, the torch
  !> batch (1, n)) against `target` (the spec's prepare turns it into fluxes).
  subroutine burgers_nn_learn(cells, target, loss, ierr, errmsg)
    real(real64), intent(in) :: cells(:)     !< closure input, size n
    real(real64), intent(in) :: target(:)    !< what the spec makes the target from
    real(real64), intent(out) :: loss        !< the loss before the step
    integer, intent(out) :: ierr             !< NN_OK on success
    character(len=*), intent(out) :: errmsg  !< message when ierr /= NN_OK
    if (allocated(x2)) then
      if (size(x2, 1) /= size(cells) .or. size(y2, 1) /= size(target)) deallocate(x2, y2)
    end if
    if (.not. allocated(x2)) allocate(x2(size(cells), 1), y2(size(target), 1))
    x2(:, 1) = cells
    y2(:, 1) = target
    call nn_train_step(trainer, x2, y2, loss=loss, stat=ierr, errmsg=errmsg)
  end subroutine burgers_nn_learn

   !> Put the trained weights into the running closure; `version` is the new weight version.
  subroutine burgers_nn_sync(version, ierr, errmsg)
    integer, intent(out) :: version          !< weight version now in the closure
    integer, intent(out) :: ierr             !< NN_OK on success
    character(len=*), intent(out) :: errmsg  !< message when ierr /= NN_OK
    call nn_train_sync(trainer, model, stat=ierr, errmsg=errmsg)
    version = nn_train_version(trainer)
  end subroutine burgers_nn_sync

  !> Save the trainer's checkpoint (weights and optimiser state) to `path`.
  subroutine burgers_nn_save(path, ierr, errmsg)
    character(len=*), intent(in) :: path     !< checkpoint file
    integer, intent(out) :: ierr             !< NN_OK on success
    character(len=*), intent(out) :: errmsg  !< message when ierr /= NN_OK
    call nn_train_save(trainer, path, stat=ierr, errmsg=errmsg)
  end subroutine burgers_nn_save

  !> Record every `every`-th forward call into `dir` for `pyclosure replay`,
  !> with the host states of the stage that used it (after burgers_nn_load).
  subroutine burgers_nn_record(dir, every, ierr, errmsg)
    character(len=*), intent(in) :: dir     !< new or empty directory
    integer, intent(in) :: every            !< record call 1, 1+every, ...
    integer, intent(out) :: ierr            !< NN_OK on success
    character(len=*), intent(out) :: errmsg !< message when ierr /= NN_OK
    call nn_record_start(model, dir, every=every, stat=ierr, errmsg=errmsg)
    if (ierr == NN_OK) stage_hook => record_stage
  end subroutine burgers_nn_record

  !> The stage hook while recording: add the stage's host states to the
  !> record of the forward call it used (a no-op for calls not sampled).
  subroutine record_stage(uin, w, flux, flux_oth, flux_sgs, frc, dt, dx)
    real(real64), intent(in) :: uin(:), w(:), flux(:), flux_oth(:), flux_sgs(:), frc(:)
    real(real64), intent(in) :: dt, dx
    call nn_record_array(model, "state_before", uin)
    call nn_record_array(model, "given_x", uin)
    call nn_record_array(model, "state_after", w)
    call nn_record_array(model, "flux", flux)
    call nn_record_array(model, "other_flux", flux_oth)
    call nn_record_array(model, "applied_flux", flux_sgs(1:size(w)))
    call nn_record_array(model, "source", frc)
    call nn_record_array(model, "dt", dt)
    call nn_record_array(model, "dx", dx)
  end subroutine record_stage

  !> Subgrid flux at the n faces from the n cell values (the hook). A failing
  !> forward pass stops the run with the bridge's message: a model that
  !> cannot be evaluated mid-run leaves nothing sensible to continue with.
  subroutine nn_sgs_flux(u, tau)
    real(real64), intent(in) :: u(:)     !< cell values, size n
    real(real64), intent(out) :: tau(:)  !< flux at left faces, size n
    integer :: ierr
    character(len=512) :: msg
    if (allocated(u2)) then
      if (size(u2, 1) /= size(u)) deallocate(u2, tau2)
    end if
    if (.not. allocated(u2)) allocate(u2(size(u), 1), tau2(size(u), 1))
    u2(:, 1) = u
    call nn_forward(model, u2, tau2, stat=ierr, errmsg=msg)
    if (ierr /= NN_OK) then
      write (error_unit, '(a)') "burgers_nn: forward pass failed: "//trim(msg)
      error stop 1
    end if
    tau = tau2(:, 1)
  end subroutine nn_sgs_flux

end module burgers_nn
