import t from 'tap'
import { sharedServicesSkip, startCluster } from './fixtures/server.js'
import { memberRows, receives, rest, scopeOf } from './fixtures/rooms.js'
import { connect, type Person, uid } from './fixtures/chat.js'
import { until } from './fixtures/timing.js'
import { TestClient, type Frame } from './fixtures/ws-client.js'

// Two nodes sharing one database and one Redis: membership drives subscriptions on every node, the
// database decides races, and each node's membership cache follows changes made on the other.
t.test('two nodes', { skip: sharedServicesSkip() }, async (t) => {
  const [nodeA, nodeB] = await startCluster(t, 2, { redis: 'env' })
  if (nodeA === undefined || nodeB === undefined) throw new Error('cluster did not start')
  const api = nodeA.app.chat.config.apiPrefix

  function roomEvents (client: TestClient, roomId: string, count: number): Promise<Frame[]> {
    return (async () => {
      const frames: Frame[] = []
      while (frames.length < count) frames.push(await client.next((frame) => frame.data?.roomId === roomId && typeof frame.data?.seq === 'number', 3000))
      return frames
    })()
  }

  t.test('room.added reaches every socket of an added user on the other node, and the room\'s events follow in order', async (t) => {
    const alice = await connect(nodeA, uid('alice'))
    const bob = await connect(nodeB, uid('bob'))
    const bobSecond = await TestClient.session(nodeB.wsUrl, bob.token)
    const bobOnA = await TestClient.session(nodeA.wsUrl, bob.token)
    const carol = await connect(nodeB, uid('carol'))
    const room = (await alice.client.ack('room.create', { name: 'across', type: 'GROUP', memberIds: [bob.id] })).room as { id: string }
    for (const client of [bob.client, bobSecond.client, bobOnA.client]) {
      t.match((await client.next((frame) => frame.event === 'room.added')).data?.room, { id: room.id, myRole: 'MEMBER' }, 'every socket of the member, on both nodes')
    }
    await alice.client.ack('room.member.add', { roomId: room.id, userIds: [carol.id] })
    t.match((await carol.client.next((frame) => frame.event === 'room.added')).data?.room, { id: room.id, lastSeq: 1 }, 'an invitee on the other node')
    await alice.client.ack('room.update', { roomId: room.id, name: 'renamed' })
    await rest(nodeA, alice.token, 'PATCH', `${api}/rooms/${room.id}`, { description: 'via REST' })
    for (const [label, client] of [['bob on B', bob.client], ['bob again on B', bobSecond.client], ['bob on A', bobOnA.client], ['carol on B', carol.client]] as const) {
      const frames = await roomEvents(client, room.id, 3)
      t.same(frames.map((frame) => [frame.data?.seq, frame.event]), [[1, 'room.member_joined'], [2, 'room.updated'], [3, 'room.updated']], `${label}: consecutive seqs, in order`)
    }
    for (const one of [alice, bob, carol]) one.client.close()
    bobSecond.client.close()
    bobOnA.client.close()
  })

  t.test('a user who joins on one node is subscribed on the other', async (t) => {
    const owner = await connect(nodeA, uid('owner'))
    const joiner = await connect(nodeA, uid('joiner'))
    const joinerOnB = await TestClient.session(nodeB.wsUrl, joiner.token)
    const room = (await owner.client.ack('room.create', { name: 'open', type: 'CHANNEL' })).room as { id: string }
    await joiner.client.ack('room.join', { roomId: room.id })
    t.match((await joinerOnB.client.next((frame) => frame.event === 'room.added')).data?.room, { id: room.id, myRole: 'MEMBER' })
    await owner.client.ack('room.update', { roomId: room.id, name: 'busy channel' })
    const frames = await roomEvents(joinerOnB.client, room.id, 2)
    t.same(frames.map((frame) => frame.data?.seq), [1, 2], 'their own member_joined (filled from the log if the broker was faster than the subscription) then the update')
    owner.client.close()
    joiner.client.close()
    joinerOnB.client.close()
  })

  t.test('dm.open from two nodes at once yields one room', async (t) => {
    for (let round = 0; round < 5; round += 1) {
      const alice = await connect(nodeA, uid('alice'))
      const bob = await connect(nodeB, uid('bob'))
      const [fromA, fromB] = await Promise.all([
        alice.client.ack('dm.open', { userId: bob.id }),
        bob.client.ack('dm.open', { userId: alice.id }),
      ])
      t.equal((fromA.room as { id: string }).id, (fromB.room as { id: string }).id, `round ${round}`)
      alice.client.close()
      bob.client.close()
    }
  })

  t.test('concurrent joins on both nodes never pass maxMembers', async (t) => {
    const owner = await connect(nodeA, uid('owner'))
    const room = (await owner.client.ack('room.create', { name: 'small', type: 'GROUP', maxMembers: 3 })).room as { id: string }
    const joiners: Person[] = []
    for (let index = 0; index < 6; index += 1) joiners.push(await connect(index % 2 === 0 ? nodeA : nodeB, uid('j')))
    const replies = await Promise.all(joiners.map((joiner) => joiner.client.request('room.join', { roomId: room.id })))
    t.equal(replies.filter((reply) => reply.event === 'ack').length, 2)
    t.equal(replies.filter((reply) => reply.error?.code === 'ROOM_FULL').length, 4)
    t.same(await memberRows(nodeA, room.id), { count: 3, memberCount: 3 })
    owner.client.close()
    for (const joiner of joiners) joiner.client.close()
  })

  t.test('each node\'s membership cache follows changes made on the other; kicks and deletes unsubscribe there', async (t) => {
    const owner = await connect(nodeA, uid('owner'))
    const member = await connect(nodeB, uid('member'))
    const room = (await owner.client.ack('room.create', { name: 'cached', type: 'GROUP', memberIds: [member.id] })).room as { id: string }
    await member.client.next((frame) => frame.event === 'room.added')
    const onB = scopeOf(nodeB).chatRooms
    t.equal((await onB.requireMember(room.id, { id: member.id, tenant: '' })).role, 'MEMBER', 'node B caches the membership')
    t.ok((await onB.roomIdsOf({ id: member.id, tenant: '' })).includes(room.id))

    await owner.client.ack('room.member.role', { roomId: room.id, userId: member.id, role: 'MODERATOR' })
    await until('a role change on A to reach B\'s cache', async () => (await onB.membership(room.id, { id: member.id, tenant: '' }))?.role === 'MODERATOR', { timeoutMs: 2000 })
    await owner.client.ack('room.update', { roomId: room.id, isPrivate: true })
    await until('a settings change on A to reach B\'s cache', async () => (await onB.membership(room.id, { id: member.id, tenant: '' }))?.room.isPrivate === true, { timeoutMs: 2000 })

    await owner.client.ack('room.member.remove', { roomId: room.id, userId: member.id })
    t.match((await member.client.next((frame) => frame.event === 'room.removed')).data, { roomId: room.id })
    await until('the kick to reach B\'s cache', async () => (await onB.membership(room.id, { id: member.id, tenant: '' })) === null, { timeoutMs: 2000 })
    t.notOk((await onB.roomIdsOf({ id: member.id, tenant: '' })).includes(room.id))
    await until('B to drop the socket\'s subscription', () => scopeOf(nodeB).chatHub.roomConnections(room.id).size === 0, { timeoutMs: 2000 })
    await owner.client.ack('room.update', { roomId: room.id, name: 'without them' })
    t.notOk(await receives(member.client, 'room.updated', (data) => (data.room as { name: string }).name === 'without them', 200), 'the kicked socket hears nothing more')

    const second = (await owner.client.ack('room.create', { name: 'doomed', type: 'GROUP', memberIds: [member.id] })).room as { id: string }
    await member.client.next((frame) => frame.event === 'room.added' && (frame.data?.room as { id: string }).id === second.id)
    t.ok(await onB.membership(second.id, { id: member.id, tenant: '' }))
    await owner.client.ack('room.delete', { roomId: second.id })
    t.match((await member.client.next((frame) => frame.event === 'room.removed')).data, { roomId: second.id }, 'a delete on A reaches sockets on B')
    await until('B to unsubscribe them', () => scopeOf(nodeB).chatHub.roomConnections(second.id).size === 0, { timeoutMs: 2000 })
    await until('B\'s cache to forget the room', async () => {
      try {
        await onB.membership(second.id, { id: member.id, tenant: '' })
        return false
      } catch (error) {
        return (error as { code?: string }).code === 'NOT_FOUND'
      }
    }, { timeoutMs: 2000 })
    owner.client.close()
    member.client.close()
  })
})
