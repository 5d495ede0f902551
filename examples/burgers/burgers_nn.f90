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
module burgers_nn
   use, intrinsic :: iso_fortran_env, only: real64, error_unit
   use nn_closure, only: nn_model, nn_load, nn_forward, nn_free, NN_OK
   use burgers_hook, only: sgs_hook
   implicit none
   private

   public :: burgers_nn_load, burgers_nn_free, nn_sgs_flux

   type(nn_model), save :: model              ! the loaded closure
   real(real64), allocatable, save :: u2(:, :), tau2(:, :)  ! (n, 1) buffers

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
      nullify(sgs_hook)
      call nn_free(model)
      if (allocated(u2)) deallocate(u2, tau2)
   end subroutine burgers_nn_free

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
