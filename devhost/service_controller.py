"""SIMULATOR: System.ServiceProcess.ServiceController of .NET Framework 4.x, as the RuntimeArchive scripts use it.

After microsoft/referencesource System.ServiceProcess/ServiceController.cs:
- ``GetServices()``: one controller per service, its status taken from the enumeration (statusGenerated);
- ``Status``: GenerateStatus queries the service only when no status is cached; ``Refresh()`` clears the cached
  status, start type and DependentServices, never ``disposed``;
- ``DependentServices``: EnumDependentServices(SERVICE_STATE_ALL) once, kept in the field ``dependentServices``
  and returned as that same array on every later read (until Refresh); each element is a new controller whose
  status comes from the enumeration;
- ``Dispose()`` -> ``Close()``: the handle closed and statusGenerated false, then ``disposed = true``; any later
  query goes through GetDataBaseHandleWithConnectAccess, which throws ObjectDisposedException;
- ``Stop()``: for each element of DependentServices (the cached array): ``Refresh()``, then when its Status is
  not Stopped, its ``Stop()`` and ``WaitForStatus(Stopped, 30 s)``; then ControlService(SERVICE_CONTROL_STOP),
  which a service in StartPending or StopPending refuses with 1061 and a stopped one with 1062
  (learn.microsoft.com ControlService);
- ``Start()``: StartService (devhost.scm.start: 1056 for a service that is not Stopped);
- ``WaitForStatus(status, timeout)``: Refresh and look again until the status is reached, else
  System.ServiceProcess.TimeoutException.
A pending state ends when it is waited for (the service finishes it), except a stop of a service the knob
``services_not_stopping`` names (it accepts the stop and never finishes it), and a start under way (StartPending) of
a service the knob ``services_failing_start`` names, which ends Stopped (its ServiceMain reports SERVICE_STOPPED
with an exit code, learn.microsoft.com SERVICE_STATUS): WaitForStatus(Running) then times out, as it waits for that
one status only (referencesource WaitForStatus: ``while (Status != desiredStatus)``). Errors: devhost.scm.ScmError for a
Win32 error (the innermost exception the scripts report), DotNetError for .NET's own.
"""

from __future__ import annotations

from pathlib import Path

from devhost import scm
from devhost.fileops import DotNetError
from devhost.hooks import read_knobs

# ServiceController.StartType's names (ServiceStartMode) for Win32_Service's start modes.
START_TYPES = {"Auto": "Automatic", "Manual": "Manual", "Disabled": "Disabled"}
DEPENDENT_STOP_WAIT_S = 30  # Stop(): new TimeSpan(0, 0, 30) for each dependent


def disposed_error() -> DotNetError:
    """new ObjectDisposedException(GetType().Name): its Message names the object on a second line."""
    return DotNetError(
        "System.ObjectDisposedException",
        "Cannot access a disposed object.\r\nObject name: 'ServiceController'.",
        0x80131622,
    )


def timeout_error() -> DotNetError:
    return DotNetError(
        "System.ServiceProcess.TimeoutException", "Time out has expired and the operation has not been completed."
    )


def _hangs_stopping(state_dir: Path, name: str) -> bool:
    return name.lower() in {str(n).lower() for n in read_knobs(state_dir).get("services_not_stopping") or []}


def _fails_starting(state_dir: Path, name: str) -> bool:
    return name.lower() in {str(n).lower() for n in read_knobs(state_dir).get("services_failing_start") or []}


def _settle(state_dir: Path, name: str, state: str) -> None:
    """The service finishes its pending state (waited for), as the knobs say."""
    if state == "StopPending" and _hangs_stopping(state_dir, name):
        return  # accepted, never finished
    if state == "StartPending" and _fails_starting(state_dir, name):
        scm.stop(state_dir, name)  # the start failed: Stopped
        return
    scm.settle(state_dir, name)


class ServiceController:
    def __init__(self, state_dir: Path, name: str, status: str | None) -> None:
        self.state_dir = state_dir
        self.service_name = name
        self._status = status  # (None: not generated)
        self._dependents: list[ServiceController] | None = None
        self._disposed = False
        self.stopped: list[str] = []  # what this controller's Stop() stopped, dependents first (for the journal)

    def _connect(self) -> scm.Service:
        """GetDataBaseHandleWithConnectAccess, then the service's handle."""
        if self._disposed:
            raise disposed_error()
        service = scm.get(self.state_dir, self.service_name)
        if service is None:
            raise scm.ScmError(1060)
        return service

    @property
    def status(self) -> str:
        if self._status is None:
            self._status = self._connect().state
        return self._status

    @property
    def start_type(self) -> str:
        return START_TYPES[self._connect().start_mode]

    @property
    def dependent_services(self) -> list[ServiceController]:
        if self._dependents is None:
            self._connect()
            self._dependents = [
                ServiceController(self.state_dir, s.name, s.state)
                for s in scm.enum_dependent_services(self.state_dir, self.service_name)
            ]
        return self._dependents

    def refresh(self) -> None:
        self._status = None
        self._dependents = None

    def dispose(self) -> None:
        self._status = None
        self._disposed = True

    def stop(self) -> None:
        self._connect()
        for dependent in self.dependent_services:
            dependent.refresh()
            if dependent.status != "Stopped":
                dependent.stop()
                dependent.wait_for_status("Stopped", DEPENDENT_STOP_WAIT_S)
                self.stopped += [name for name in dependent.stopped if name not in self.stopped]
        state = self._connect().state
        if state == "Stopped":
            raise scm.ScmError(1062)
        if state in ("StartPending", "StopPending"):
            raise scm.ScmError(1061)
        if _hangs_stopping(self.state_dir, self.service_name):
            scm.set_state(self.state_dir, self.service_name, "StopPending")  # accepted, never finished
        else:
            scm.stop(self.state_dir, self.service_name)
            self.stopped.append(self.service_name)

    def start(self) -> None:
        self._connect()
        scm.start(self.state_dir, self.service_name)

    def wait_for_status(self, wanted: str, timeout_s: float) -> None:
        # A pending state ends within any wait here, but a wait with no time (a run's budget spent, Get-WaitBudget)
        # reads the status once: WaitForStatus checks the time-out before each 250 ms sleep (referencesource).
        self.refresh()
        state = self.status
        if timeout_s > 0 and state != wanted and scm.PENDING_END.get(state) == wanted:
            _settle(self.state_dir, self.service_name, state)
            self.refresh()
        if self.status != wanted:
            raise timeout_error()

    def wait_while(self, passing: tuple[str, ...], timeout_s: float) -> bool:
        """The scripts' Wait-ServiceStateLeft: Refresh() until the status is none of ``passing``, whatever it
        becomes, within ``timeout_s``; whether it left them."""
        self.refresh()
        state = self.status
        if timeout_s > 0 and state in passing and state in scm.PENDING_END:  # (no time: one read, as above)
            _settle(self.state_dir, self.service_name, state)
            self.refresh()
        return self.status not in passing


def get_services(state_dir: Path) -> list[ServiceController]:
    """ServiceController.GetServices(): every service, its status from the enumeration."""
    return [ServiceController(state_dir, s.name, s.state) for s in scm.load(state_dir).values()]
