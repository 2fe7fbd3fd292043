"""The one definition of model versus user-facing failure: every place that shows an error
rate, a rescued count, retries or fallbacks served (dashboard, `stats`, export summaries,
alerts) takes it from here, so no two pages can disagree.

Why two rates: since retries and fallbacks, one user request may be several model calls
(attempts, one record each). A model that fails 30 % of its calls can still leave every
user answered, and a request chatwatch refused itself (`LOCAL_REFUSALS`: circuit open,
budget exceeded, rate limited) failed the user without any model being asked.

* model error rate = failed attempts / attempts. Attempts are records minus refusals (they
  never reached a model); a cancelled attempt is an attempt that did not fail.
* user requests = first attempts (attempt = 1: one per user request, refusals included).
  user-facing error rate = requests whose last attempt failed / user requests
  = (first attempts - ok answers - cancelled answers) / first attempts.
* rescued = requests answered after at least one failed attempt (ok with attempt > 1);
  retries = extra attempts (attempt > 1, counted on the model that made them); fallbacks
  served = answers a model gave as a fallback (ok with fallback_from set).

Range edges: a user request belongs to the range in which its FIRST attempt started, with
its final outcome wherever that attempt landed. Counting rows alone would count a request
whose first attempt is before the range but whose answer is inside it as an answer without
a request (and the reverse at the end). The read side (`aggregate.edge_answers`) finds the
answers (ok or cancelled, attempt > 1) on the wrong side of either edge by joining on
request_id, and `EdgeAnswers` moves them to their request's range: exact over raw rows and
over rollups alike, because only the edges need raw rows. While a retry is still running,
its request counts as failed until the retry's record is written.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EdgeAnswers:
    """Answers to move into the range (positive) or out of it (negative), per model of the
    answering attempt: ok answers and cancelled answers."""

    ok: int = 0
    cancelled: int = 0

    def __add__(self, other: EdgeAnswers) -> EdgeAnswers:
        return EdgeAnswers(self.ok + other.ok, self.cancelled + other.cancelled)


NO_EDGE = EdgeAnswers()


@dataclass(frozen=True)
class Outcomes:
    attempts: int  # model attempts: records minus local refusals
    failed_attempts: int  # error records minus local refusals
    user_requests: int  # first attempts of requests whose first attempt is in the range
    failed_requests: int  # of those, requests whose last attempt failed (refusals included)
    rescued: int  # answered after at least one failed attempt
    retries: int  # attempts after the first
    fallback_served: int  # answers given as a fallback
    refused: int  # refused by chatwatch itself, before any model call

    @property
    def model_error_rate(self) -> float | None:
        return self.failed_attempts / self.attempts if self.attempts else None

    @property
    def user_error_rate(self) -> float | None:
        return self.failed_requests / self.user_requests if self.user_requests else None


def outcomes(
    *,
    records: int,
    errors: int,
    ok: int,
    cancelled: int,
    first_attempts: int,
    retries: int,
    rescued: int,
    fallback_served: int,
    refused: int,
    edge: EdgeAnswers = NO_EDGE,
) -> Outcomes:
    """The figures from the counts of one group of records (rollup sums or raw sums) and the
    edge answers of that group. `failed_requests` is bounded below by 0: with a model or
    status filter a request's answer may belong to a group its first attempt does not."""
    answered = ok + edge.ok + cancelled + edge.cancelled
    return Outcomes(
        attempts=records - refused,
        failed_attempts=errors - refused,
        user_requests=first_attempts,
        failed_requests=max(0, first_attempts - answered),
        rescued=max(0, rescued + edge.ok),
        retries=retries,
        fallback_served=fallback_served,
        refused=refused,
    )
