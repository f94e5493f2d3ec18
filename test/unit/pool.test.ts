/** Limiter: never more than `slots` tasks at once, and tasks start in the order they asked. */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { Limiter, mapPool } from "../../src/util/pool";

describe("Limiter", () => {
  it("keeps to its slots and starts tasks in the order they asked", async () => {
    const limiter = new Limiter(2);
    let active = 0;
    let most = 0;
    const started: number[] = [];
    const task = (i: number) => async (): Promise<void> => {
      started.push(i);
      active++;
      most = Math.max(most, active);
      await sleep(i % 3);
      active--;
    };
    const runs: Promise<void>[] = [];
    for (let i = 0; i < 10; i++) runs.push(limiter.run(task(i)));
    // Later callers queue behind the waiters.
    await sleep(1);
    for (let i = 10; i < 14; i++) runs.push(limiter.run(task(i)));
    await Promise.all(runs);
    assert.equal(most, 2);
    assert.deepEqual(
      started,
      Array.from({ length: 14 }, (_, i) => i),
    );
  });

  it("a slot freed while someone waits goes to that waiter, not to a caller arriving in the same tick", async () => {
    const limiter = new Limiter(1);
    const started: string[] = [];
    let active = 0;
    let most = 0;
    const task = (name: string) => async (): Promise<void> => {
      started.push(name);
      active++;
      most = Math.max(most, active);
      await sleep(2);
      active--;
    };
    const release = await limiter.acquire();
    const waiter = limiter.run(task("waiter"));
    release();
    const newcomer = limiter.run(task("newcomer")); // same tick as the release
    await Promise.all([waiter, newcomer]);
    assert.deepEqual(started, ["waiter", "newcomer"]);
    assert.equal(most, 1);
  });

  it("acquire() holds a slot until released, and a second release is harmless", async () => {
    const limiter = new Limiter(1);
    const release = await limiter.acquire();
    let ran = false;
    const waiting = limiter.run(async () => {
      ran = true;
    });
    await sleep(5);
    assert.equal(ran, false, "ran while the slot was held");
    release();
    release();
    await waiting;
    assert.equal(ran, true);
    const again = await limiter.acquire(); // the double release did not leave two slots
    let second = false;
    const blocked = limiter.run(async () => {
      second = true;
    });
    await sleep(5);
    assert.equal(second, false);
    again();
    await blocked;
  });

  it("mapPool keeps result order and stops at the first failure", async () => {
    assert.deepEqual(await mapPool([3, 1, 2], 2, async (n) => n * 2), [6, 2, 4]);
    await assert.rejects(
      mapPool([1, 2, 3], 1, async (n) => {
        if (n === 2) throw new Error("two");
        return n;
      }),
      /two/,
    );
  });
});
