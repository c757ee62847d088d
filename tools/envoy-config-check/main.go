// Command envoy-config-check validates Envoy bootstrap files against Envoy's
// v3 API as go-control-plane generates it: the YAML must decode into
// envoy.config.bootstrap.v3.Bootstrap with no unknown field, every
// typed_config must name a known extension type, and every message, including
// those inside typed_config, must pass its protoc-gen-validate rules. Fields
// the API marks deprecated are refused too: Envoy turns many of them into
// start-up errors over time.
//
// Envoy itself cannot run where zerofs-csi is tested; this is the schema
// check its shipped example Envoy config gets instead.
//
// Usage: envoy-config-check FILE... | --version
// Exit status: 0 every file valid, 1 a file invalid, 2 usage or read error.
package main

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strings"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"

	// The extensions a typed_config may name. protojson resolves an Any's
	// @type through the global registry, which holds only imported packages.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

// version is what .ci/install pins and checks; raise it with every change
// here, so that machines rebuild the tool.
const version = "0.1.0"

const apiModule = "github.com/envoyproxy/go-control-plane/envoy"

func main() {
	if len(os.Args) == 2 && os.Args[1] == "--version" {
		fmt.Printf("envoy-config-check %s (%s %s)\n", version, apiModule, moduleVersion(apiModule))
		return
	}
	if len(os.Args) < 2 || strings.HasPrefix(os.Args[1], "-") {
		fmt.Fprintln(os.Stderr, "usage: envoy-config-check FILE... | --version")
		os.Exit(2)
	}
	status := 0
	for _, path := range os.Args[1:] {
		text, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
			os.Exit(2)
		}
		if err := check(text); err != nil {
			fmt.Fprintf(os.Stderr, "%s: invalid Envoy v3 bootstrap: %v\n", path, err)
			status = 1
			continue
		}
		fmt.Printf("%s: valid Envoy v3 bootstrap\n", path)
	}
	os.Exit(status)
}

// moduleVersion is the version of a dependency built into this binary.
func moduleVersion(path string) string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path == path {
				return dep.Version
			}
		}
	}
	return "unknown"
}

// check decodes one bootstrap (YAML or JSON) and validates all of it.
func check(text []byte) error {
	json, err := yaml.YAMLToJSON(text)
	if err != nil {
		return fmt.Errorf("not YAML: %w", err)
	}
	var bootstrap bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(json, &bootstrap); err != nil {
		return err
	}
	var problems []error
	validate(bootstrap.ProtoReflect(), "", &problems)
	return errors.Join(problems...)
}

// validate applies m's rules with ValidateAll, which descends into nested
// messages but stops at Any fields (it cannot see their content); walk then
// finds each typed_config and each deprecated field below m.
func validate(m protoreflect.Message, path string, problems *[]error) {
	if v, ok := m.Interface().(interface{ ValidateAll() error }); ok {
		if err := v.ValidateAll(); err != nil {
			*problems = append(*problems, at(path, err))
		}
	}
	walk(m, path, problems)
}

func walk(m protoreflect.Message, path string, problems *[]error) {
	m.Range(func(fd protoreflect.FieldDescriptor, value protoreflect.Value) bool {
		field := join(path, string(fd.Name()))
		if opts, ok := fd.Options().(*descriptorpb.FieldOptions); ok && opts.GetDeprecated() {
			*problems = append(*problems, at(field, errors.New("deprecated in the v3 API")))
		}
		switch {
		case fd.IsList() && fd.Message() != nil:
			list := value.List()
			for i := 0; i < list.Len(); i++ {
				visit(list.Get(i).Message(), fmt.Sprintf("%s[%d]", field, i), problems)
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			value.Map().Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
				visit(v.Message(), fmt.Sprintf("%s[%v]", field, k.Interface()), problems)
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			visit(value.Message(), field, problems)
		}
		return true
	})
}

// visit descends into a nested message; an Any is unpacked and validated as a
// message of its own.
func visit(m protoreflect.Message, path string, problems *[]error) {
	if any, ok := m.Interface().(*anypb.Any); ok {
		inner, err := any.UnmarshalNew()
		if err != nil {
			*problems = append(*problems, at(path, err))
			return
		}
		validate(inner.ProtoReflect(), fmt.Sprintf("%s<%s>", path, proto.MessageName(inner)), problems)
		return
	}
	walk(m, path, problems)
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func at(path string, err error) error {
	if path == "" {
		return err
	}
	return fmt.Errorf("%s: %w", path, err)
}
