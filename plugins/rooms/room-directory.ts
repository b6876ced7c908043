import { sql } from 'drizzle-orm'
import { rows, type ChatDb } from '../../db/client.js'
import type { DirectoryPage, DirectoryRequest, DirectoryRoom } from '../../schemas/room.js'
import { DIRECTORY_CURSOR_MAX, DIRECTORY_LIMIT, DIRECTORY_LIMIT_MAX } from '../../schemas/room.js'
import { ENVELOPE_RESERVE, ReplyBudget, fitList } from '../../lib/reply-budget.js'
import type { TenantUser } from '../../lib/user-key.js'
import { ANY_TEXT, UUID_RE, decodeCursor, encodeCursor } from '../../lib/page-cursor.js'
import { ROOM_COLUMNS, roomOf, type RoomRow } from './room-summaries.js'

/**
 * The room directory (room.directory, GET /rooms/directory): the public GROUP and CHANNEL rooms of the
 * caller's tenant that the caller may join (not banned; not full, unless already in), by name. DIRECT
 * and SUPPORT rooms are always private, so never listed. Ordered by lower(name), id and paged by a
 * cursor of the last room's pair (keyset: rooms_directory_idx), so a page costs the same at any depth.
 */

/** The answer around its rooms, with the longest cursor. */
const DIRECTORY_FRAME_BYTES = '{"rooms":[],"nextCursor":""}'.length + DIRECTORY_CURSOR_MAX

interface DirectoryRow extends RoomRow {
  sort_name: string
  joined: boolean
}

/** Where a page starts: after the room (lower(name), id). */
interface Cursor {
  name: string
  id: string
}

function decodeDirectoryCursor (text: string): Cursor {
  const [name, id] = decodeCursor(text, [ANY_TEXT, UUID_RE], 'room.directory') as [string, string]
  return { name, id }
}

/** A LIKE pattern's text taken literally (the default escape character is the backslash). */
function likeLiteral (text: string): string {
  return text.replace(/[\\%_]/g, (char) => `\\${char}`)
}

interface Listed {
  room: DirectoryRoom
  sortName: string
}

/** Up to `limit` directory rooms after `cursor`, in order, with whether the user is in each: one statement. */
async function loadDirectory (db: ChatDb, user: TenantUser, request: DirectoryRequest, cursor: Cursor | null, limit: number): Promise<Listed[]> {
  const words = (request.query ?? '').trim()
  const named = words === ''
    ? sql``
    : sql` and (lower(r.name) like lower(${likeLiteral(words) + '%'}) or lower(r.name) like lower(${'% ' + likeLiteral(words) + '%'}))`
  const typed = request.type === undefined ? sql`` : sql` and r.type = ${request.type}`
  const after = cursor === null ? sql`` : sql` and (lower(r.name), r.id) > (${cursor.name}, ${cursor.id}::uuid)`
  const result = await db.execute(sql`
    select ${sql.raw(ROOM_COLUMNS)}, lower(r.name) as sort_name,
      exists (select 1 from chat.room_members m where m.room_id = r.id and m.user_id = ${user.id}) as joined
    from chat.rooms r
    where r.tenant = ${user.tenant} and not r.is_private and r.type in ('GROUP', 'CHANNEL')${named}${typed}${after}
      and not exists (select 1 from chat.room_bans b
        where b.room_id = r.id and b.user_id = ${user.id} and (b.until is null or b.until > now()))
      and (r.max_members is null or r.member_count < r.max_members
        or exists (select 1 from chat.room_members m where m.room_id = r.id and m.user_id = ${user.id}))
    order by lower(r.name), r.id
    limit ${limit}`)
  return rows<DirectoryRow>(result).map((row) => ({ room: { ...roomOf(row), joined: row.joined }, sortName: row.sort_name }))
}

/**
 * One page of the directory: `limit` rooms (default 50, at most 100) after `cursor`, cut to fit
 * `maxReplyBytes`; nextCursor null at the end. A cursor this server did not hand out is VALIDATION_FAILED.
 */
export async function directoryPage (db: ChatDb, user: TenantUser, request: DirectoryRequest, maxReplyBytes: number): Promise<DirectoryPage> {
  const cursor = request.cursor === undefined ? null : decodeDirectoryCursor(request.cursor)
  const limit = Math.min(request.limit ?? DIRECTORY_LIMIT, DIRECTORY_LIMIT_MAX)
  const found = await loadDirectory(db, user, request, cursor, limit + 1)
  const rooms = fitList(found.slice(0, limit).map((one) => one.room), new ReplyBudget(maxReplyBytes, ENVELOPE_RESERVE + DIRECTORY_FRAME_BYTES))
  const last = found[rooms.length - 1]
  const more = rooms.length < found.length && last !== undefined
  return { rooms, nextCursor: more ? encodeCursor([last.sortName, last.room.id]) : null }
}
