"""The per-job count of steps under way that a deletion's cleanup waits on."""

import asyncio

from dataset_operator.in_flight import InFlight


def test_settled_returns_only_once_every_step_of_the_job_has_left():
    async def main():
        steps = InFlight()
        steps.enter("u-1")
        steps.enter("u-1")
        steps.enter("u-2")
        settled = asyncio.create_task(steps.settled("u-1"))
        await steps.leave("u-1")
        await asyncio.sleep(0.05)
        after_one = settled.done()
        await steps.leave("u-1")
        await asyncio.wait_for(settled, 5)
        return after_one, "u-1" in steps, len(steps)

    assert asyncio.run(main()) == (False, False, 1)


def test_settled_returns_at_once_for_a_job_with_nothing_under_way():
    async def main():
        await asyncio.wait_for(InFlight().settled("u-1"), 1)

    asyncio.run(main())
