package fsm

import (
	"errors"
	"fmt"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// The log encoding: Encode is the only writer of log entries and decode
// the only reader, so the envelope version and the ignore-unknown flag are
// decided here and nowhere else.

// CommandVersion is the Command envelope version this binary writes, and
// the newest it applies. Bump it only when the envelope's meaning changes
// (a new body does not need it: bodies are recognised by their type); a
// replica then refuses entries of a newer version until it is upgraded.
const CommandVersion = 1

// Errors of Encode.
var (
	// ErrUnknownCommand: the command has no body this binary knows, or
	// envelope fields it does not know (a newer node's command forwarded
	// to this older leader). Proposing it would stop every replica that
	// does not know it either.
	ErrUnknownCommand = errors.New("fsm: command unknown to this binary")
	// ErrCommandVersion: the command asks for an envelope version this
	// binary does not write.
	ErrCommandVersion = errors.New("fsm: unsupported command version")
)

// Encode marshals cmd as a log entry at cmd.NowUnixMs; see EncodeAt.
func Encode(cmd *fsmpb.Command) ([]byte, error) {
	return EncodeAt(cmd, cmd.GetNowUnixMs())
}

// EncodeAt marshals cmd as a log entry stamped with CommandVersion, the
// time nowUnixMs (the leader's clock when it proposes) and, for settings
// bodies, the ignore-unknown flag. cmd is not modified and its own
// envelope fields are not trusted: it must leave Version 0 (or
// CommandVersion) and carry a body this binary applies.
func EncodeAt(cmd *fsmpb.Command, nowUnixMs int64) ([]byte, error) {
	if v := cmd.GetVersion(); v != 0 && v != CommandVersion {
		return nil, fmt.Errorf("%w: version %d, this binary writes %d", ErrCommandVersion, v, CommandVersion)
	}
	known, ignorable := bodyKind(cmd)
	if !known {
		return nil, fmt.Errorf("%w: unknown or missing body", ErrUnknownCommand)
	}
	if len(cmd.ProtoReflect().GetUnknown()) > 0 {
		return nil, fmt.Errorf("%w: envelope has fields this binary does not know", ErrUnknownCommand)
	}
	// A new envelope around the caller's body: nothing of the caller's
	// envelope is copied, and the body is only read by Marshal.
	entry := &fsmpb.Command{
		Version:       CommandVersion,
		NowUnixMs:     nowUnixMs,
		IgnoreUnknown: ignorable,
		Body:          cmd.Body,
	}
	b, err := proto.Marshal(entry)
	if err != nil {
		return nil, fmt.Errorf("fsm: encoding command: %w", err)
	}
	return b, nil
}

// bodyKind says whether this binary applies cmd's body and whether a
// replica that does not know it may skip it. Only settings are skippable:
// a replica that misses one keeps its older settings (pacing, port
// entitlements, alert thresholds), which it could not interpret anyway;
// one that missed a change to a request record would diverge from the
// cluster. TestBodyKinds fails when a body is added without a kind here.
func bodyKind(cmd *fsmpb.Command) (known, ignorable bool) {
	switch cmd.GetBody().(type) {
	case *fsmpb.Command_Create, *fsmpb.Command_Cancel, *fsmpb.Command_Claim,
		*fsmpb.Command_StartAttempts, *fsmpb.Command_BatchStartAttempts,
		*fsmpb.Command_RecordResults, *fsmpb.Command_BatchRecordResults,
		*fsmpb.Command_MarkNotified, *fsmpb.Command_Purge,
		*fsmpb.Command_Requeue, *fsmpb.Command_Expire,
		// Contact rules: they change request records, and a start reads
		// the suppression lists, so a replica must apply every one.
		*fsmpb.Command_Defer, *fsmpb.Command_End,
		*fsmpb.Command_AddSuppressions, *fsmpb.Command_RemoveSuppressions,
		// A start reads the frequency caps too.
		*fsmpb.Command_FreqSetCap, *fsmpb.Command_FreqDeleteCap,
		// Dialog state lives on request records too.
		*fsmpb.Command_DialogUpdates:
		return true, false
	case *fsmpb.Command_SetEntitlement, *fsmpb.Command_DeleteEntitlement,
		*fsmpb.Command_SetThreshold, *fsmpb.Command_DeleteThreshold,
		*fsmpb.Command_SetPacing, *fsmpb.Command_DeletePacing,
		// Calling windows are only stored; the leader reads them.
		*fsmpb.Command_SetCallingWindow, *fsmpb.Command_DeleteCallingWindow:
		return true, true
	}
	return false, false
}

// decode decodes and checks one command entry: it returns the command, or
// skip for an entry of a body this binary does not know that is flagged
// ignore-unknown. It panics on anything else this binary cannot apply (bad
// bytes, a version it does not know, an unknown body without the flag);
// ApplyBatch decodes a whole batch before applying any of it, so such a
// batch changes nothing.
func decode(l *raft.Log) (cmd *fsmpb.Command, skip bool) {
	cmd = &fsmpb.Command{}
	if err := proto.Unmarshal(l.Data, cmd); err != nil {
		panic(fmt.Sprintf("fsm: log entry %d is not a Command (%v); refusing to diverge from the cluster", l.Index, err))
	}
	if cmd.Version == 0 || cmd.Version > CommandVersion {
		panic(fmt.Sprintf("fsm: log entry %d has command version %d but this binary applies versions 1 to %d; upgrade it", l.Index, cmd.Version, CommandVersion))
	}
	if known, _ := bodyKind(cmd); !known {
		// A body type number this binary does not know decodes as no body.
		if cmd.IgnoreUnknown {
			return nil, true
		}
		panic(unknownBody(l.Index, cmd))
	}
	return cmd, false
}

func unknownBody(index uint64, cmd *fsmpb.Command) string {
	return fmt.Sprintf("fsm: log entry %d (command version %d) has an unknown or missing body and is not flagged ignore-unknown; upgrade this binary", index, cmd.Version)
}
