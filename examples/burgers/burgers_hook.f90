!> Subgrid-flux hook of the Burgers example: the one place where an external
!> closure (for instance the learned one in `burgers_nn`) plugs into `burgers_core`.
!>
!> `burgers_core` calls `sgs_hook(u, tau)` when the closure is "nn". The hook
!> receives the cell values `u(1:n)` of the current Runge-Kutta stage and must
!> return the subgrid momentum flux `tau(1:n)` at the faces, face i being the
!> LEFT face of cell i (periodic: the right face of cell n is face 1).
!> Keeping the pointer here lets `burgers_core` compile without `nn_closure`.
!>
!> `stage_hook`, when set, is called after every Runge-Kutta stage with what
!> the stage did: w = uin - dt*(flux(i+1) - flux(i))/dx + dt*frc(i), with
!> flux = flux_oth + flux_sgs face by face. The learned closure uses it to
!> record host states for replay.
module burgers_hook
  use, intrinsic :: iso_fortran_env, only: real64
  implicit none
  private

  public :: sgs_flux_proc, sgs_hook, stage_proc, stage_hook

  abstract interface
  !> Subgrid flux at the n faces from the n cell values.
  subroutine sgs_flux_proc(u, tau)
    import :: real64
    real(real64), intent(in) :: u(:)     !< cell values, size n
    real(real64), intent(out) :: tau(:)  !< flux at left faces, size n
  end subroutine sgs_flux_proc

  !> What one Euler stage did (see the module comment).
  subroutine stage_proc(uin, w, flux, flux_oth, flux_sgs, frc, dt, dx)
    import :: real64
    real(real64), intent(in) :: uin(:)       !< cells before the stage, size n
    real(real64), intent(in) :: w(:)         !< cells after the stage, size n
    real(real64), intent(in) :: flux(:)      !< total face flux applied, size n+1
    real(real64), intent(in) :: flux_oth(:)  !< its non-closure part, size n+1
    real(real64), intent(in) :: flux_sgs(:)  !< its subgrid part, size n+1
    real(real64), intent(in) :: frc(:)       !< cell source applied, size n
    real(real64), intent(in) :: dt, dx
  end subroutine stage_proc
end interface

   !> The installed subgrid-flux procedure; null until a closure module sets it.
procedure(sgs_flux_proc), pointer :: sgs_hook => null()
   !> Called after every stage when set (recording); null otherwise.
procedure(stage_proc), pointer :: stage_hook => null()

end module burgers_hook
