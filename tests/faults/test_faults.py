"""Faults injected into a running flusso on the demo store under a live write workload.

Each ends with every document of every index compared against what the database implies.
The quick ones run in the default suite; `make faults` runs them all (about 15 minutes on
two cores) and prints one table of detection and recovery times.
"""

from __future__ import annotations

import pytest
from tests.faults.report import record
from tests.faults.scenarios import FAULTS, Fault
from tests.faults.stack import FaultStack

ORDER = {fault.name: position for position, fault in enumerate(FAULTS)}


def _param(fault: Fault):
    marks = () if fault.quick else (pytest.mark.faults,)
    return pytest.param(fault, id=fault.name, marks=marks)


@pytest.mark.parametrize("fault", [_param(f) for f in FAULTS])
def test_flusso_heals_the_fault_and_the_index_equals_the_database(fault: Fault) -> None:
    with FaultStack(fault.name, **fault.stack) as stack:
        result = fault.run(stack)
        row = {**result.as_row(), "order": ORDER[fault.name]}
        record(row)
        assert result.passed, (
            f"{result.fault}: " + "; ".join(result.failures())
            + "\n" + "\n".join(result.notes) + "\n--- flusso log ---\n"
            + (stack.flusso.log_tail(40) if stack.flusso else "")
        )
