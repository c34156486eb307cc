package deploy

import (
	"context"
	"errors"
	"fmt"

	"github.com/hangar-dev/hangar/internal/apps"
	"github.com/hangar-dev/hangar/internal/store"
)

// DeleteApp deletes an app: it destroys the app's machines, then removes,
// in one store transaction, the app's record, its releases and the
// progress record of a deploy of it, then the supervisor's records of its
// destroyed machines. The cleaners subscribed to apps.Deletions remove
// the rest (volumes, secrets, logs, addresses, certificates). An app that
// does not exist is apps.ErrNotFound.
func (d *Deployer) DeleteApp(ctx context.Context, app string) error {
	if _, err := d.apps().Get(ctx, app); err != nil {
		return err
	}
	ms, err := d.Sup.List(ctx, app)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if err := d.Sup.Destroy(ctx, app, m.ID, true); err != nil {
			return fmt.Errorf("delete app %s: %w", app, err)
		}
	}
	keys, err := d.appKeys(ctx, app)
	if err != nil {
		return fmt.Errorf("delete app %s: %w", app, err)
	}
	if err := d.apps().Delete(ctx, app, keys...); err != nil {
		return err
	}
	if err := d.Sup.ForgetDestroyed(ctx, app); err != nil {
		return fmt.Errorf("delete app %s: %w", app, err)
	}
	return nil
}

// appKeys are the store keys deploy keeps of an app: its releases and
// the progress record of a deploy (left by one the deletion cut short).
func (d *Deployer) appKeys(ctx context.Context, app string) ([]string, error) {
	kvs, err := d.Store.List(ctx, releasesPrefix(app))
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(kvs)+1)
	for _, kv := range kvs {
		keys = append(keys, kv.Key)
	}
	switch _, err := d.Store.Get(ctx, runKey(app)); {
	case err == nil:
		keys = append(keys, runKey(app))
	case !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	return keys, nil
}

// apps is the app records: Apps, or the records in Store.
func (d *Deployer) apps() *apps.Service {
	if d.Apps != nil {
		return d.Apps
	}
	return apps.New(apps.Options{Store: d.Store})
}
