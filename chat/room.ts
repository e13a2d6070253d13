/** One client in a {@linkcode Room}. */
export interface Member {
  /** Unique within the server. */
  readonly id: number;
  /**
   * Queues `line` for this member without waiting. Returns false when the member cannot take
   * it (its pending output is over the limit); the room then removes it.
   */
  deliver(line: Uint8Array): boolean;
}

/**
 * The clients of one chat server. `say` hands every line to every member, the sender
 * included, in the order `say` is called; it never waits on a slow member.
 */
export class Room<M extends Member = Member> {
  #members = new Map<number, M>();

  /** How many members are in the room. */
  get size(): number {
    return this.#members.size;
  }

  /** The members, in the order they joined. */
  members(): IterableIterator<M> {
    return this.#members.values();
  }

  /** Adds `member`; returns the new size. */
  join(member: M): number {
    this.#members.set(member.id, member);
    return this.#members.size;
  }

  /** Removes `member`; returns false if it was not in the room. */
  leave(member: M): boolean {
    return this.#members.delete(member.id);
  }

  /**
   * Delivers `line` (which must end in `\n`) to every member. Members that refuse it are
   * removed from the room and returned, for the caller to disconnect.
   */
  say(line: Uint8Array): M[] {
    let refused: M[] | undefined;
    for (const member of this.#members.values()) {
      if (!member.deliver(line)) (refused ??= []).push(member);
    }
    if (refused === undefined) return NO_MEMBERS as M[];
    for (const member of refused) this.#members.delete(member.id);
    return refused;
  }
}

const NO_MEMBERS: never[] = [];
