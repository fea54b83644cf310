/** A small typed event emitter: one handler list per event name, typed by an event map. */

/** A handler of events of type `T`. */
export type Handler<T> = (event: T) => void;

/** Emits the events of `Events` (event name → payload type). */
export class Emitter<Events extends object> {
  private readonly handlers = new Map<keyof Events, Set<Handler<never>>>();

  /**
   * Call `handler` on every `name` event; returns a function that removes it. A handler that
   * throws does not stop the others: the error is reported by `onHandlerError`.
   */
  on<K extends keyof Events>(name: K, handler: Handler<Events[K]>): () => void {
    let set = this.handlers.get(name);
    if (set === undefined) {
      set = new Set();
      this.handlers.set(name, set);
    }
    set.add(handler as Handler<never>);
    return () => this.off(name, handler);
  }

  /** Call `handler` on the next `name` event only. */
  once<K extends keyof Events>(name: K, handler: Handler<Events[K]>): () => void {
    const off = this.on(name, (event) => {
      off();
      handler(event);
    });
    return off;
  }

  /** Remove `handler` from `name`. */
  off<K extends keyof Events>(name: K, handler: Handler<Events[K]>): void {
    this.handlers.get(name)?.delete(handler as Handler<never>);
  }

  /** Whether `name` has a handler (to skip building an event nobody listens to). */
  has(name: keyof Events): boolean {
    const set = this.handlers.get(name);
    return set !== undefined && set.size > 0;
  }

  protected emit<K extends keyof Events>(name: K, event: Events[K]): void {
    const set = this.handlers.get(name);
    if (set === undefined) return;
    for (const handler of [...set]) {
      try {
        (handler as Handler<Events[K]>)(event);
      } catch (error) {
        this.onHandlerError(error);
      }
    }
  }

  /** A handler threw. By default the error is rethrown outside the emitter's loop. */
  protected onHandlerError(error: unknown): void {
    queueMicrotask(() => {
      throw error;
    });
  }
}
