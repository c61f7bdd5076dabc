import DataLoader from 'dataloader';

// How many event-loop turns a batch may keep gathering items while more keep arriving.
const MAX_GATHER_TURNS = 4;

/**
 * Group commit: items submitted while the server is busy are gathered and written by ONE call of
 * `commitBatch` (one statement, one commit, one fsync), and each submitter gets its own outcome once
 * that call resolved, i.e. once the batch is durable.
 *
 * Items are gathered for as long as more keep arriving, one event-loop turn at a time (setImmediate:
 * each turn's poll phase reads the requests that came in meanwhile), at most MAX_GATHER_TURNS turns and
 * `maxBatch` items. Waiting a turn costs microseconds when the server is idle (nothing to poll) and
 * gathers the requests already queued when it is busy: the busier the server, the larger the batch, the
 * fewer the commits.
 */
export class GroupCommit<Item, Outcome> {
  readonly #loader: DataLoader<Item, Outcome>;
  /** Items submitted since the current batch began gathering. */
  #gathered = 0;

  constructor(commitBatch: (items: readonly Item[]) => Promise<Outcome[]>, maxBatch: number) {
    this.#loader = new DataLoader((items) => commitBatch(items), {
      cache: false,
      maxBatchSize: maxBatch,
      batchScheduleFn: (run) => this.#gather(run),
    });
  }

  /** Resolves with the item's outcome once its batch committed. */
  submit(item: Item): Promise<Outcome> {
    this.#gathered++;
    return this.#loader.load(item);
  }

  #gather(run: () => void): void {
    let seen = this.#gathered;
    let turns = 0;
    const check = () => {
      if (this.#gathered === seen || ++turns >= MAX_GATHER_TURNS) {
        this.#gathered = 0;
        run();
        return;
      }
      seen = this.#gathered;
      setImmediate(check);
    };
    setImmediate(check);
  }
}
