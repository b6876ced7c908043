/**
 * Members' read marks per room, for "seen by" (protocol 11.6): filled from `room.members` (each member's
 * `lastReadSeq`, which survives a reconnect), kept current by `receipt.read` pushes and the user's own
 * sends. A message of seq N is seen by the members whose mark is N or more.
 */
export class ReadMarks {
  private readonly rooms = new Map<string, Map<string, number>>()

  /** A mark only moves forward, as on the server. */
  note (roomId: string, userId: string, seq: number): void {
    let marks = this.rooms.get(roomId)
    if (marks === undefined) {
      marks = new Map()
      this.rooms.set(roomId, marks)
    }
    if ((marks.get(userId) ?? -1) < seq) marks.set(userId, seq)
  }

  forget (roomId: string): void {
    this.rooms.delete(roomId)
  }

  /** The members known to have read the room up to `seq` (their ids, in the order they were first seen). */
  seenBy (roomId: string, seq: number): string[] {
    const marks = this.rooms.get(roomId)
    if (marks === undefined) return []
    return [...marks].filter(([, mark]) => mark >= seq).map(([userId]) => userId)
  }
}
