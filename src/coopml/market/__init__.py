"""The collaborative ML market of Ohrimenko, Tople & Tschiatschek (2019).

Parties submit training data and a validation task, pay a fee for the improvement the
market's model brings them, and are paid for the use of their data in others' models.
:func:`run_market` runs a round end to end; :func:`settle` is its pure settlement core;
:func:`replication_audit` measures what replicating one's data earns under each payment
rule; :func:`find_duplicates` and :func:`resolve_duplicates` are the replication
defences a real market runs before settling; :func:`check_release` inspects a fitted
model for other parties' training rows before its file is handed to a party. The
conventions the paper leaves open (the value of the empty coalition, normalised shares,
what happens to negative shares and non-positive payments) are documented in
:mod:`coopml.market.payment` and :mod:`coopml.market.settlement`, and recorded in every
settlement.
"""

from coopml.market.characteristic import market_characteristic
from coopml.market.duplicates import DuplicateReport, find_duplicates, resolve_duplicates
from coopml.market.market import CustomModel, MarketResult, run_market, select_training_set
from coopml.market.payment import EMPTY_VALUES, PAYMENT_RULES, Shares, payment_shares
from coopml.market.release import Exposure, ReleaseCheck, check_release
from coopml.market.replication import ReplicationAudit, replication_audit
from coopml.market.settlement import Flag, PartyLine, Settlement, Task, Verification, settle

__all__ = [
    "EMPTY_VALUES",
    "PAYMENT_RULES",
    "CustomModel",
    "DuplicateReport",
    "Exposure",
    "Flag",
    "MarketResult",
    "PartyLine",
    "ReleaseCheck",
    "ReplicationAudit",
    "Settlement",
    "Shares",
    "Task",
    "Verification",
    "check_release",
    "find_duplicates",
    "market_characteristic",
    "payment_shares",
    "replication_audit",
    "resolve_duplicates",
    "run_market",
    "select_training_set",
    "settle",
]
