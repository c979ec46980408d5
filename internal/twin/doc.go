// Package twin keeps device and module twins as Azure IoT Hub does: tags
// owned by the service, desired properties the service writes and the device
// reads, and reported properties the device writes.
//
// # Stored form and rendered form
//
// A [Twin] keeps each of tags, desired and reported as a plain JSON object
// without Azure's "$metadata" and "$version" keys, so that SQL (the query
// language) can read the documents as they are. The metadata ("$lastUpdated"
// per object and leaf, plus "$lastUpdatedVersion" on the desired side) is a
// separate JSON object per side, already in Azure's "$metadata" shape, and
// the versions are integers. The Render functions splice these parts into
// Azure's three JSON shapes without parsing the documents again:
//
//   - [Render]: the service twin of GET /twins/{id}, with the registry fields
//     the caller supplies in [DeviceFacts];
//   - [RenderDevice]: the body of the device's MQTT twin GET response,
//     {"desired":{...,"$version":N},"reported":{...,"$version":M}}. It leaves
//     "$metadata" out: the device SDKs never read it, Azure's MQTT response
//     carries only "$version", and leaving it out keeps the response small;
//   - [DesiredChange.Body]: the desired-property notification, the patch
//     plus "$version".
//
// # Versions and etags
//
// Every accepted change increments the twin's Version; a reported patch
// increments Reported.Version, a desired change Desired.Version and a tags
// change TagsVersion. Every side starts at version 1, as Azure's do. The
// etag changes on any tags or desired change: it is the base64 of the twin
// version at that change, as 8 big-endian bytes, so a fresh twin's etag is
// Azure's "AAAAAAAAAAE=".
//
// A twin exists for every registered device. A store that has never written
// one returns [Empty]: empty documents, versions 1 and zero times.
//
// # Patches and limits
//
// Patches are JSON merge patches (RFC 7396), see [MergePatch]. A patch is
// checked against [Limits] (Azure's by default) before anything is written;
// a rejected patch changes nothing. Arrays are accepted in desired and
// reported properties, as newer Azure service versions accept them, and
// refused in tags, which the query language filters on. An array is a leaf
// for metadata: it has one "$lastUpdated" and is replaced as a whole.
//
// # History
//
// Every accepted change is kept as a [Change]: the side, its new version, the
// time, the source and the merge patch. A Replace (PUT) is kept as the merge
// patch that turns the old document into the new one, so history is always
// patches. [Service.AsOf] replays the history of a twin from [Empty] up to the
// requested time; metadata and etags are derived only from patches, times and
// versions, so the replay reproduces them exactly.
//
// History is bounded: [Service.TrimHistory] (run by the hub's retention
// sweep) deletes each twin's oldest changes beyond a [HistoryBound], a count
// and an age, at most [TrimBatch] rows per transaction. A merge patch cannot
// be undone, so trimming keeps a base, the twin as of the newest trimmed
// change, written in the same transaction as the delete ([TrimStore]).
// AsOf replays the kept changes onto the base, so it stays exact for any
// time from the base's on, and refuses earlier times with
// [HistoryTrimmedError] naming that oldest time rather than answer with a
// twin that never existed. Replay stays linear in the kept changes, which
// the bound also caps. [Service.HistoryStart] tells since when a history
// is whole.
//
// # Concurrency
//
// The [Store] applies each change inside one write transaction that reads the
// current twin, calls back into this package to compute the new state and
// writes the row and its history entries. Changes to one twin are therefore
// serialized by the store, and concurrent patches all apply.
//
// Reported patches, which every device sends, are group-committed when the
// store is a [BatchStore]: [Service.PatchReported] validates the patch,
// queues it and returns after the batch holding it has committed. One
// goroutine, running only while patches are queued, takes everything queued
// (up to Options.MaxBatch) and applies it in one write transaction, so
// patches arriving while a transaction commits share the next commit. A
// patch that fails fails alone; a batch transaction that fails as a whole is
// retried one patch per transaction. Service changes (desired, tags) keep one
// transaction each.
//
// # Durability
//
// A patch is acknowledged once its transaction has committed. What that
// survives is the store's choice: the SQLite store's WAL with
// synchronous=NORMAL survives a crash of the process; with
// sqlite.DB.SyncTwins(true) each batch is fsynced and survives power loss.
package twin
