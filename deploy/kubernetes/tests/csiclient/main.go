// SPDX-License-Identifier: Apache-2.0

// csiclient: the few CSI controller calls that spdk/tests/14-csi.sh makes against a running
// spdk-csi driver, the way Kubernetes' external-provisioner and external-snapshotter make
// them (the StorageClass secret under the key "secret.json" on every call).
//
// Owns: turning one command line into one CSI gRPC call and printing its answer as one JSON
// line. Must never: talk to SPDK itself (everything goes through the driver under test), or
// retry a call (the test judges each answer as the driver gave it).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	csi "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

const usage = `usage: csiclient -endpoint unix:///path/csi.sock [-secrets FILE] [-timeout SECS] COMMAND ARGS
commands:
  create NAME BYTES                 CreateVolume (block, single-node writer)
  create-from-snapshot NAME BYTES SNAPSHOT_ID
  create-from-volume NAME BYTES VOLUME_ID
  expand VOLUME_ID BYTES            ControllerExpandVolume
  snapshot VOLUME_ID NAME           CreateSnapshot
  delete VOLUME_ID                  DeleteVolume
  delete-snapshot SNAPSHOT_ID       DeleteSnapshot
Each prints one JSON line: the response, or {"error": "..."} with exit status 1.`

func main() {
	endpoint := flag.String("endpoint", "", "CSI endpoint, unix:///path")
	secretsFile := flag.String("secrets", "", "file whose content is passed as the secret \"secret.json\"")
	timeout := flag.Int("timeout", 120, "seconds to wait for one call")
	flag.Usage = func() { fmt.Fprintln(os.Stderr, usage) }
	flag.Parse()
	args := flag.Args()
	if *endpoint == "" || len(args) == 0 {
		flag.Usage()
		os.Exit(2)
	}
	secrets := map[string]string{}
	if *secretsFile != "" {
		b, err := os.ReadFile(*secretsFile)
		if err != nil {
			fail(fmt.Errorf("cannot read the secrets file: %w", err))
		}
		secrets["secret.json"] = string(b)
	}
	conn, err := grpc.Dial(*endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fail(fmt.Errorf("cannot reach %s: %w", *endpoint, err))
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(*timeout)*time.Second)
	defer cancel()
	resp, err := call(ctx, csi.NewControllerClient(conn), secrets, args)
	if err != nil {
		fail(err)
	}
	out, err := json.Marshal(resp)
	if err != nil {
		fail(err)
	}
	fmt.Println(string(out))
}

func call(ctx context.Context, c csi.ControllerClient, secrets map[string]string, a []string) (any, error) {
	need := func(n int) error {
		if len(a) != n+1 {
			return fmt.Errorf("%s takes %d arguments\n%s", a[0], n, usage)
		}
		return nil
	}
	bytes := func(s string) (int64, error) {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v <= 0 {
			return 0, fmt.Errorf("BYTES must be a positive integer, not %q", s)
		}
		return v, nil
	}
	switch a[0] {
	case "create", "create-from-snapshot", "create-from-volume":
		n := 2
		if a[0] != "create" {
			n = 3
		}
		if err := need(n); err != nil {
			return nil, err
		}
		size, err := bytes(a[2])
		if err != nil {
			return nil, err
		}
		req := &csi.CreateVolumeRequest{
			Name:          a[1],
			CapacityRange: &csi.CapacityRange{RequiredBytes: size},
			VolumeCapabilities: []*csi.VolumeCapability{{
				AccessType: &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}},
				AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
			}},
			Secrets: secrets,
		}
		switch a[0] {
		case "create-from-snapshot":
			req.VolumeContentSource = &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{
				Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: a[3]}}}
		case "create-from-volume":
			req.VolumeContentSource = &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Volume{
				Volume: &csi.VolumeContentSource_VolumeSource{VolumeId: a[3]}}}
		}
		return c.CreateVolume(ctx, req)
	case "expand":
		if err := need(2); err != nil {
			return nil, err
		}
		size, err := bytes(a[2])
		if err != nil {
			return nil, err
		}
		return c.ControllerExpandVolume(ctx, &csi.ControllerExpandVolumeRequest{
			VolumeId: a[1], CapacityRange: &csi.CapacityRange{RequiredBytes: size}, Secrets: secrets})
	case "snapshot":
		if err := need(2); err != nil {
			return nil, err
		}
		return c.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{SourceVolumeId: a[1], Name: a[2], Secrets: secrets})
	case "delete":
		if err := need(1); err != nil {
			return nil, err
		}
		return c.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: a[1], Secrets: secrets})
	case "delete-snapshot":
		if err := need(1); err != nil {
			return nil, err
		}
		return c.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: a[1], Secrets: secrets})
	}
	return nil, fmt.Errorf("unknown command %q\n%s", a[0], usage)
}

func fail(err error) {
	b, _ := json.Marshal(map[string]string{"error": err.Error()})
	fmt.Println(string(b))
	os.Exit(1)
}
