// Package sizing turns a job plan ("export these libraries and folders of this site") into AMR
// job specs, following SharePoint's sizing guidance for the Asynchronous Metadata Read API. It
// does no I/O of its own: folder sizes come through a Sizer, the clock through Config.Now, so the
// rules can be property-tested.
//
// # Size rules
//
// A node's size (Node.Items) is the number of files below it, at any depth: SharePoint's
// SMTotalFileCount, or the folder's StorageMetrics.TotalFileCount. Microsoft's thresholds come with
// that file count ("Utilize SMTotalFileCount … to get the file count in folders", AMR-INTRO), and
// SharePoint has no recursive folder count (docs/amr-protocol.md §6.2, §7.4). A list root is sized by
// the list's ItemCount (files, folders and items at any depth), which is at least its file count. The
// rules themselves do not depend on the unit; Items+1 per URL (the node itself) is only an estimate
// of the objects a job returns, which also holds folders and list items.
//
//   - Items < Small: the node joins a multi-URL batch (CreateSPAsyncReadJobWithMultiUrl) with
//     other small nodes of the same web. A batch holds at most MaxURLsPerJob URLs (SharePoint
//     allows 5,000) and at most MaxItemsPerBatch items, counting each URL as Items+1 (default:
//     Large, so a batch is never bigger than the largest single job). A batch always takes at
//     least one URL, and a batch of one URL is submitted as a single-URL job.
//   - Small <= Items <= Large: one job on the node, IncludeDirectDescendantsOnly=false.
//   - Items > Large, or unknown (a Sizer may get no file count from SharePoint): a probe job on
//     the node with IncludeDirectDescendantsOnly=true. Its parsed output comes back as a
//     ProbeResult and Continue plans each direct subfolder by the same rules, recursively. A
//     subfolder the parser found no file count for (whether AMR writes SMTotalFileCount into the
//     manifest is not documented) is sized through Sizer.Resolve (folder REST calls), or probed in
//     turn when Continue has no Sizer.
//
// Batches are packed greedily in URL order (siblings stay together) after sorting by web and
// URL, so the output does not depend on the order of the targets.
//
// # Sizer.Children
//
// By default the planner never lists folders: SharePoint's guidance for folders over 1M items is
// the shallow AMR probe, and folder REST calls on such folders are expensive. With
// Config.ListLargeFolders the planner instead splits a large folder at once by listing its
// subfolders through Sizer.Children, and reads the folder itself and its direct files with a
// shallow job (same options and Emit policy as a probe, but nothing comes back to the planner).
// That saves a round trip through AMR's queue, which can take hours, at the cost of one paged
// REST listing per large folder.
//
// # Exactly-once emission
//
// AMR returns a job's target object and all its descendants, or with
// IncludeDirectDescendantsOnly the target and its direct children. Every object under the
// plan's targets is read by at least one job and emitted by exactly one, because each JobSpec
// carries an Emit policy the parser applies. Under every policy the parser publishes only
// objects at or below one of the job's URLs (AMR may add context, such as the list of a folder
// target, which that list's own job publishes):
//
//   - EmitAll: every object (single, multi-URL and incremental jobs; see Scope below).
//   - EmitProbe: every object except folders other than the job's own URL. Such a job has
//     IncludeDirectDescendantsOnly, so those folders are the direct subfolders, and their own
//     jobs (planned by Continue) emit them as their target. The probed node itself, its list
//     object for a library root, and its direct files or list items are emitted here.
//   - EmitSecurityOnly: users, groups and role definitions only; no content object.
//
// Overlapping targets are reduced first: a target inside another target is dropped.
//
// # Security
//
// When the plan asks for IncludeSecurity, one job per plan (a plan is one site collection) reads
// it: IncludeSecurity=true and IncludeDirectDescendantsOnly=true on the top-most target (fewest
// path segments, then fewest items, then URL order), with no other read option, EmitSecurityOnly.
// No other job sets IncludeSecurity. Content jobs then have EmitPrincipals=false: the security
// job's UserGroup.xml holds every site-collection user and group, so the principals other jobs
// list are not emitted again. Without a security job every job emits the principals it lists
// (downstream de-duplicates them by principal id). IncludePermission, IncludeVersions and
// IncludeExtendedMetadata follow the plan on every content job, probes included: a probe emits
// its folder and direct files with the options the plan asked for; the direct subfolders it
// reads and drops cost a few objects each.
//
// # Incremental plans
//
// With Request.Incremental, each list holding targets is looked up in ChangeTokens. A token
// issued less than TokenMaxAge ago (60 days, SharePoint's change-log window), not flagged in
// TokenRejected (the submitter got -2146232832), and, when IncrementalMaxItems is set, on a list
// of at most that many items, gives one incremental job on the list URL with StartChangeToken:
// AMR accepts a change token on list and library URLs only, so such a job cannot be split by
// folder and is never batched. When the targets are folders of the list, the job still reads the
// whole list's changes and its Scope names the targets: the parser emits only objects under
// them. Any other list is read in full by the size rules.
//
// SharePoint cancels change-token jobs that run over 10 minutes. The planner cannot know how
// many changes a token will return, only the list's size, which bounds them; IncrementalMaxItems
// (off by default) trades a possibly-cancelled incremental job for a full read of lists above it.
// A cancelled incremental job should be re-planned with the list in TokenRejected.
//
// An incremental plan also keeps list roots read in full out of multi-URL batches, so that the
// job reading a list root (a single job or a probe) returns that list's CurrentChangeToken; its
// JobSpec says so in TokenListID. Such jobs come first in the output (after the security job),
// so submitting in output order creates them before any other job reading their list, and the
// token they return misses no change made while the others run. It must be stored only once
// every job of the plan that names the list in ListIDs has completed. Folder targets read in
// full yield no list token.
//
// # Every list gets a token
//
// A multi-URL job returns one CurrentChangeToken, which cannot be the token of each list it
// reads. So every job reading a list root carries that list's own token in ListTokens: the
// Sizer's Node.ChangeToken, SharePoint's SP.List.CurrentChangeToken as read while the plan was
// sized, before any of its jobs existed. Changes made after that read are read again by the next
// pass (a few duplicates, never a loss). The parser commits a job's ListTokens when the job's
// planning tree is done (for TokenListID it prefers the job's own token), so after a full pass
// batched lists have tokens too, whether or not the plan was incremental. A list whose token
// SharePoint gave no value for (it refused the property) gets none: it is read in full next pass.
//
// A folder target gets a token of its own the same way (ListToken.Scope: its list's token, for
// that folder only; a list's token says the whole list was exported, which a folder's job cannot
// say). An incremental plan looks them up (Request.ScopeTokens): the folder targets of a list
// share one incremental job on the list, scoped to them, which starts from the oldest of their
// tokens (each target's newer of its list's and its own) and commits its token for each folder,
// never for the list. A folder without either is read in full.
//
// # Job ids
//
// A job id is a hash of the plan id and the job's content (URLs, options, Emit policy, token,
// scope), not of its size estimate, and the output is sorted (see above, then by web and URL),
// so a redelivered plan against an unchanged tenant yields identical specs.
package sizing
